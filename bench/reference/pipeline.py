"""The reference Python pipeline the benchmark compares against: pandas prep, scikit-learn's
HistGradientBoosting, joblib artifacts and SciPy drift statistics, written the way a team would
write it, for the same spec file the Rust pipeline reads.

    python pipeline.py prep  --spec SPEC.toml --out DIR FILE.csv
    python pipeline.py train --spec SPEC.toml --data DIR --model MODEL.joblib
    python pipeline.py drift --spec SPEC.toml --data DIR --logs LOGDIR

Each command prints one JSON summary on stdout.
"""

import argparse
import glob
import hashlib
import json
import os
import sys
import time

import joblib
import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from features import Features, feature_columns, load_spec, timestamps

# Numeric reference values kept for drift, as the project keeps (crates/core drift REFERENCE_SAMPLE).
REFERENCE_SAMPLE = 5000

def validate(frame, spec):
    """Coerces each column to its type; returns the valid rows and the quarantined ones with a reason."""
    reason = pd.Series("", index=frame.index)
    for c in spec["columns"]:
        name = c["name"]
        if name not in frame:
            raise SystemExit(f"missing column {name}")
        raw = frame[name]
        if c["type"] in ("integer", "float", "boolean"):
            values = pd.to_numeric(raw, errors="coerce")
            bad = values.isna() & raw.notna()
            if c["type"] == "integer":
                bad |= values.notna() & (values != np.floor(values))
            if c["type"] == "boolean":
                bad |= values.notna() & ~values.isin([0, 1])
            if "min" in c:
                bad |= values < c["min"]
            if "max" in c:
                bad |= values > c["max"]
            frame[name] = values
        else:
            values = raw.astype("string").str.strip()
            bad = pd.Series(False, index=frame.index)
            if c.get("categories"):
                bad = values.notna() & ~values.isin(c["categories"])
            frame[name] = values
        if not c.get("nullable", False):
            bad |= frame[name].isna()
        reason = reason.mask(bad & (reason == ""), f"{name}: not a valid {c['type']}")
    quarantined = frame[reason != ""].assign(reason=reason[reason != ""])
    return frame[reason == ""], quarantined


def prep(args):
    spec = load_spec(args.spec)
    started = time.perf_counter()
    raw = pd.read_csv(args.file, dtype=str, keep_default_na=True)
    rows_in = len(raw)
    valid, quarantined = validate(raw, spec)
    valid = valid.drop_duplicates()
    features = Features(spec).fit(valid).transform(valid)
    os.makedirs(args.out, exist_ok=True)
    valid.to_parquet(os.path.join(args.out, "processed.parquet"), index=False)
    features.assign(**{spec["target"]["column"]: valid[spec["target"]["column"]].to_numpy()}).to_parquet(
        os.path.join(args.out, "features.parquet"), index=False
    )
    if len(quarantined):
        quarantined.to_csv(os.path.join(args.out, "quarantine.csv"), index=False)
    digest = hashlib.sha256(pd.util.hash_pandas_object(valid, index=False).to_numpy().tobytes()).hexdigest()
    summary = {"rows_in": rows_in, "rows_out": len(valid), "quarantined": len(quarantined), "duplicates": rows_in - len(quarantined) - len(valid), "sha256": digest}
    with open(os.path.join(args.out, "_SUCCESS"), "w") as f:
        json.dump(summary, f)
    summary["seconds"] = time.perf_counter() - started
    print(json.dumps(summary))


def split(frame, spec):
    """Time-ordered holdout: the last share of the rows by time."""
    order = np.argsort(timestamps(frame, spec["time"]).to_numpy(), kind="stable") if spec.get("time") else np.random.default_rng(spec["split"].get("seed", 42)).permutation(len(frame))
    cut = len(frame) - int(round(len(frame) * spec["split"]["holdout"]))
    return order[:cut], order[cut:]


def training_data(spec, data):
    """The prepared rows of DIR as training input: the fitted features, their values for every
    row, the targets, the split, and the spec's gradient-boosted candidate."""
    frame = pd.read_parquet(os.path.join(data, "processed.parquet"))
    train_rows, holdout_rows = split(frame, spec)
    features = Features(spec).fit(frame.iloc[train_rows])
    x = features.transform(frame)
    y = frame[spec["target"]["column"]].astype(float).to_numpy()
    params = next(m for m in spec["models"].values() if m["kind"] == "gradient_boosting")
    return features, x, y, train_rows, holdout_rows, params


def train(args):
    spec = load_spec(args.spec)
    started = time.perf_counter()
    features, x, y, train_rows, holdout_rows, params = training_data(spec, args.data)
    model = HistGradientBoostingRegressor(
        loss=params.get("loss", "squared_error"),
        learning_rate=params.get("learning_rate", 0.1),
        max_iter=params.get("max_iter", 100),
        max_leaf_nodes=params.get("max_leaf_nodes", 31),
        min_samples_leaf=params.get("min_samples_leaf", 20),
        early_stopping=False,
        random_state=42,
    )
    fit_started = time.perf_counter()
    model.fit(x.iloc[train_rows], y[train_rows])
    fit_seconds = time.perf_counter() - fit_started
    predicted = model.predict(x.iloc[holdout_rows])
    truth = y[holdout_rows]
    joblib.dump({"features": features, "model": model, "version": "v1"}, args.model)
    print(json.dumps({
        "rows_train": len(train_rows),
        "rows_holdout": len(holdout_rows),
        "rmse": float(np.sqrt(mean_squared_error(truth, predicted))),
        "mae": float(mean_absolute_error(truth, predicted)),
        "r2": float(r2_score(truth, predicted)),
        "fit_seconds": fit_seconds,
        "seconds": time.perf_counter() - started,
    }))


def psi(reference, current, edges):
    r = np.histogram(reference, edges)[0] / len(reference)
    c = np.histogram(current, edges)[0] / len(current)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r)))


def drift(args):
    """Per-feature drift of the logged inferences against the training rows."""
    spec = load_spec(args.spec)
    started = time.perf_counter()
    reference = pd.read_parquet(os.path.join(args.data, "processed.parquet"))
    train_rows, _ = split(reference, spec)
    reference = reference.iloc[train_rows]
    logs = [pd.read_json(path, lines=True) for path in sorted(glob.glob(os.path.join(args.logs, "**", "*.jsonl"), recursive=True))]
    logs = pd.concat(logs, ignore_index=True)
    current = pd.json_normalize(logs["features"].tolist())
    policy = spec["drift"]
    results = {}
    for c in feature_columns(spec):
        name = c["name"]
        if c["type"] == "categorical":
            levels = c.get("categories") or sorted(reference[name].dropna().unique())
            ref = reference[name].value_counts().reindex(levels, fill_value=0).to_numpy()
            cur = current[name].value_counts().reindex(levels, fill_value=0).to_numpy()
            keep = (ref + cur) > 0
            chi2, p, _, _ = stats.chi2_contingency(np.vstack([ref[keep], cur[keep]]))
            js = float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
            results[name] = {"chi_square": float(chi2), "p_value": float(p), "jensen_shannon": js, "drift": bool(p < policy["p_value"] and js > policy["jensen_shannon_threshold"])}
        else:
            ref = reference[name].astype(float).to_numpy()
            ref = ref[~np.isnan(ref)]
            if len(ref) > REFERENCE_SAMPLE:
                # The same work as the project: a seeded sample of the training values.
                ref = np.random.default_rng(42).choice(ref, REFERENCE_SAMPLE, replace=False)
            cur = current[name].astype(float).to_numpy()
            ks = stats.ks_2samp(ref, cur)
            scale = np.std(ref) or 1.0
            w = float(stats.wasserstein_distance(ref, cur) / scale)
            edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
            results[name] = {"ks": float(ks.statistic), "p_value": float(ks.pvalue), "wasserstein": w, "psi": psi(ref, cur, edges), "drift": bool(ks.pvalue < policy["p_value"] and w > policy["wasserstein_threshold"])}
    drifted = sum(r["drift"] for r in results.values())
    print(json.dumps({
        "current_rows": len(current),
        "drifted_features": drifted,
        "dataset_drift": drifted / len(results) >= policy["dataset_share"],
        "features": results,
        "seconds": time.perf_counter() - started,
    }))


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prep")
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("file")
    p.set_defaults(run=prep)
    t = commands.add_parser("train")
    t.add_argument("--spec", required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--model", required=True)
    t.set_defaults(run=train)
    d = commands.add_parser("drift")
    d.add_argument("--spec", required=True)
    d.add_argument("--data", required=True)
    d.add_argument("--logs", required=True)
    d.set_defaults(run=drift)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
