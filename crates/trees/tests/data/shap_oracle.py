"""Writes shap_oracle.json: the `shap` package's path-dependent TreeSHAP values for the fixed models
and rows of shap_model.json (written by `MLOPS_WRITE_SHAP_MODEL=1 cargo test -p mlops-trees --test
shap_oracle`), each model handed to shap.TreeExplainer as its documented dictionary of trees.

    python shap_oracle.py        # with shap==0.48.0 (see README.md)

Our trees send `x <= threshold` left and a missing value the way `missing_left` says, as shap's
`children_default` does; each node's cover is the number of training rows that reached it (shap's
`node_sample_weight`). A forest averages its trees (values scaled by 1 / trees); boosting adds them
to its baseline (`base_offset`); a tree of a multi-output ensemble writes `width` values from
output `output`.
"""

import json
import os

import numpy as np
import shap

HERE = os.path.dirname(os.path.abspath(__file__))
LEAF = 2**32 - 1


def shap_tree(tree, n_outputs, scale):
    nodes = tree["nodes"]
    n = len(nodes)
    left = np.full(n, -1, dtype=np.int32)
    right = np.full(n, -1, dtype=np.int32)
    default = np.full(n, -1, dtype=np.int32)
    features = np.full(n, -2, dtype=np.int32)
    thresholds = np.zeros(n)
    values = np.zeros((n, n_outputs))
    width, output = tree["width"], tree["output"]
    for i, node in enumerate(nodes):
        if node["feature"] == LEAF:
            start = node["left"] * width
            values[i, output : output + width] = np.array(tree["leaf_values"][start : start + width]) * scale
        else:
            left[i], right[i] = node["left"], node["right"]
            default[i] = node["left"] if node["missing_left"] else node["right"]
            features[i] = node["feature"]
            thresholds[i] = node["threshold"]
    return {
        "children_left": left,
        "children_right": right,
        "children_default": default,
        "features": features,
        "thresholds": thresholds,
        "values": values,
        "node_sample_weight": np.array(tree["covers"], dtype=np.float64),
    }


def explain(model, rows):
    n_outputs = model["n_outputs"]
    scale = 1.0 / len(model["trees"]) if model["average"] else 1.0
    explainer = shap.TreeExplainer(
        {
            "trees": [shap_tree(tree, n_outputs, scale) for tree in model["trees"]],
            "base_offset": np.array(model["baseline"], dtype=np.float64),
            "tree_output": "raw_value",
            "objective": "squared_error",
            "input_dtype": np.float64,
            "internal_dtype": np.float64,
        },
        feature_perturbation="tree_path_dependent",
    )
    values = np.asarray(explainer.shap_values(rows))  # rows x features (x outputs)
    expected = np.atleast_1d(explainer.expected_value)
    if values.ndim == 2:
        values = values[:, :, None]
    return [
        [list(values[r, :, o]) + [float(expected[o])] for o in range(n_outputs)] for r in range(rows.shape[0])
    ]


def main():
    with open(os.path.join(HERE, "shap_model.json")) as f:
        fixture = json.load(f)
    rows = np.array([[np.nan if v is None else v for v in row] for row in fixture["rows"]], dtype=np.float64)
    oracle = {"shap_version": shap.__version__, "models": [[name, explain(model, rows)] for name, model in fixture["models"]]}
    with open(os.path.join(HERE, "shap_oracle.json"), "w") as f:
        json.dump(oracle, f)
        f.write("\n")


if __name__ == "__main__":
    main()
