"""scikit-learn fitting the same candidate families as `mlops run`, on the same table, spec (as
`mlops init` drafted it) and split, the way a team would write it with scikit-learn's own tools.

What it does: pandas reads the CSV; rows without a target are dropped; the time column gives
hour, weekday and month (sine and cosine of the cyclical ones); the split is time-ordered (the
latest 20 % held out) when the spec has a time, else stratified random; categoricals of at most
64 levels are ordinal codes for trees and one-hot for linear models, those of more levels go
through scikit-learn's cross-fitted TargetEncoder; linear models get median imputation and
standardisation. Then each family of the spec is fitted and scored on the holdout:
Ridge / LogisticRegression (lbfgs), DecisionTree, RandomForest (n_jobs = every core) and
HistGradientBoosting with the spec's parameters.

    python candidates.py --spec SPEC.toml FILE.csv

Prints one JSON object: per candidate, fit seconds and holdout metrics, and the whole time.
"""

import argparse
import json
import os
import time
import tomllib

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

MAX_LEVELS = 64
UNIX = {"unix": "s", "unix_ms": "ms"}


def parse_time(values, fmt):
    if fmt in UNIX:
        return pd.to_datetime(pd.to_numeric(values), unit=UNIX[fmt], utc=True)
    if fmt == "rfc3339":
        return pd.to_datetime(values, utc=True, format="ISO8601")
    return pd.to_datetime(values, format=fmt)


def load(spec, path):
    frame = pd.read_csv(path, dtype=str, keep_default_na=True)
    target = spec["target"]["column"]
    frame = frame[frame[target].notna()].reset_index(drop=True)
    columns = {c["name"]: c for c in spec["columns"]}
    skip = set(spec.get("ignore", [])) | {target, spec.get("id")} | set(spec.get("features", {}).get("exclude", []))
    time_column = (spec.get("time") or {}).get("column")
    out, categorical = {}, []
    for name, c in columns.items():
        if name in skip or name == time_column or c["type"] in ("string", "datetime"):
            continue
        if c["type"] == "categorical":
            out[name] = frame[name].str.strip()
            categorical.append(name)
        elif c["type"] == "boolean":
            out[name] = frame[name].str.lower().isin(["true", "yes", "1"]).astype(float).where(frame[name].notna())
        else:
            out[name] = pd.to_numeric(frame[name])
    times = None
    if time_column:
        times = parse_time(frame[time_column], columns[time_column]["format"])
        periods = {"hour": (times.dt.hour, 24), "weekday": (times.dt.day_of_week, 7), "month": (times.dt.month, 12)}
        features = spec.get("features", {})
        for part in features.get("time_parts", []):
            values, period = periods[part]
            out[part] = values.astype(float)
            if part in features.get("cyclical", []):
                out[part + "_sin"] = np.sin(2 * np.pi * values / period)
                out[part + "_cos"] = np.cos(2 * np.pi * values / period)
    x = pd.DataFrame(out)
    task = spec["target"]["task"]
    y = pd.to_numeric(frame[target]) if task == "regression" else frame[target].astype(str)
    return x, y, categorical, times


def split(spec, x, y, times):
    holdout = spec.get("split", {}).get("holdout", 0.2)
    if times is not None:
        order = np.argsort(times.to_numpy(), kind="stable")
        cut = int(round(len(order) * (1 - holdout)))
        return order[:cut], order[cut:]
    stratify = y if spec["target"]["task"] != "regression" else None
    return train_test_split(np.arange(len(y)), test_size=holdout, random_state=spec.get("split", {}).get("seed", 42), stratify=stratify)


def encoder(x_train, categorical, linear, task):
    many = [c for c in categorical if x_train[c].nunique() > MAX_LEVELS]
    few = [c for c in categorical if c not in many]
    numeric = [c for c in x_train.columns if c not in categorical]
    target_type = {"regression": "continuous", "binary": "binary", "multiclass": "multiclass"}[task]
    if linear:
        parts = [
            ("few", OneHotEncoder(handle_unknown="ignore"), few),
            ("many", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"), TargetEncoder(target_type=target_type), StandardScaler()), many),
            ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
        ]
    else:
        parts = [
            ("few", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan), few),
            ("many", TargetEncoder(target_type=target_type), many),
            ("numeric", "passthrough", numeric),
        ]
    return ColumnTransformer([p for p in parts if p[2]])


def model(kind, params, task, n_train):
    classify = task != "regression"
    if kind == "linear":
        if classify:
            return LogisticRegression(C=1.0 / max(params.get("alpha", 1.0), 1e-12), max_iter=300)
        return Ridge(alpha=params.get("alpha", 1.0))
    if kind == "decision_tree":
        cls = DecisionTreeClassifier if classify else DecisionTreeRegressor
        return cls(min_samples_leaf=params.get("min_samples_leaf", 1), max_depth=params.get("max_depth"), random_state=0)
    if kind == "random_forest":
        cls = RandomForestClassifier if classify else RandomForestRegressor
        # The project's default leaf size: one row per 50,000 training rows, at least one.
        leaf = params.get("min_samples_leaf", max(1, n_train // 50_000))
        return cls(n_estimators=params.get("trees", 100), min_samples_leaf=leaf, max_depth=params.get("max_depth"), n_jobs=os.cpu_count(), random_state=0)
    cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
    extra = {"loss": params["loss"]} if params.get("loss") and not classify else {}
    return cls(
        learning_rate=params.get("learning_rate", 0.1),
        max_iter=params.get("max_iter", 100),
        max_leaf_nodes=params.get("max_leaf_nodes", 31),
        max_depth=params.get("max_depth"),
        min_samples_leaf=params.get("min_samples_leaf", 20),
        l2_regularization=params.get("l2_regularization", 0.0),
        early_stopping={"on": True, "off": False}.get(params.get("early_stopping", "auto"), "auto"),
        random_state=0,
        **extra,
    )


def metrics(task, y_true, model, x):
    if task == "regression":
        p = model.predict(x)
        return {"rmse": float(np.sqrt(mean_squared_error(y_true, p))), "mae": float(mean_absolute_error(y_true, p)), "r2": float(r2_score(y_true, p))}
    proba = model.predict_proba(x)
    classes = list(model.classes_)
    predicted = np.array(classes)[proba.argmax(axis=1)]
    out = {"accuracy": float(accuracy_score(y_true, predicted)), "log_loss": float(log_loss(y_true, proba, labels=classes))}
    if task == "binary":
        out["auc"] = float(roc_auc_score(y_true == classes[1], proba[:, 1]))
        out["f1"] = float(f1_score(y_true, predicted, pos_label=classes[1]))
    else:
        out["macro_f1"] = float(f1_score(y_true, predicted, average="macro"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True)
    parser.add_argument("csv")
    args = parser.parse_args()
    with open(args.spec, "rb") as f:
        spec = tomllib.load(f)
    started = time.perf_counter()
    x, y, categorical, times = load(spec, args.csv)
    train, holdout = split(spec, x, y, times)
    task = spec["target"]["task"]
    results = {}
    for name, params in spec["models"].items():
        kind = params["kind"]
        begun = time.perf_counter()
        pipeline = make_pipeline(encoder(x.iloc[train], categorical, kind == "linear", task), model(kind, params, task, len(train)))
        pipeline.fit(x.iloc[train], y.iloc[train])
        fit_seconds = time.perf_counter() - begun
        results[name] = {"kind": kind, "fit_seconds": round(fit_seconds, 3), **metrics(task, y.iloc[holdout], pipeline, x.iloc[holdout])}
    print(json.dumps({"rows_train": len(train), "rows_holdout": len(holdout), "seconds": round(time.perf_counter() - started, 3), "candidates": results}))


if __name__ == "__main__":
    main()
