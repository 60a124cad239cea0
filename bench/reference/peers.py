"""The benchmark's other peers, on the same spec and data as the project and the reference pipeline:

    python peers.py prep  --engine polars|duckdb --spec SPEC.toml --out DIR FILE.csv
    python peers.py train --engine lightgbm|lightgbm-goss|xgboost --spec SPEC.toml --data DIR

`prep` reads the CSV as text, casts each column to its spec type, quarantines the rows that fail
a check (a value that does not cast, below min or above max, outside the categories, missing in
a column that may not be), with the first failing column as the reason, removes duplicate rows,
and writes the valid rows as parquet (snappy), the quarantined ones as CSV and a _SUCCESS marker.
What it does not do that the project does: per-cell messages naming the value, datetime formats,
exact-integer checks beyond the cast, the content hash in the marker.

`train` fits the spec's gradient-boosted candidate with LightGBM or XGBoost (histogram method,
leaf-wise to the same leaf count, the same rounds and learning rate, Poisson when the spec says,
every core) on the reference pipeline's features and split (reference `prep` output in DIR), and
scores the holdout. `lightgbm-goss` is LightGBM with gradient-based one-side sampling
(`data_sample_strategy="goss"`, its default rates 0.2 and 0.1), against the project's
`sampling = "goss"`. Each prints one JSON summary.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from features import load_spec
from pipeline import training_data

NUMERIC = {"integer", "float", "boolean"}


def prep_polars(spec, path, out):
    import polars as pl

    frame = pl.read_csv(path, infer_schema=False)
    reason = pl.lit(None, dtype=pl.String)
    casts = []
    for c in reversed(spec["columns"]):
        name, kind = c["name"], c["type"]
        raw = pl.col(name).str.strip_chars()
        raw = pl.when(raw == "").then(None).otherwise(raw)
        if kind in NUMERIC:
            value = raw.cast(pl.Float64, strict=False)
            bad = value.is_null() & raw.is_not_null()
            if kind == "integer":
                bad = bad | (value.is_not_null() & (value != value.floor()))
            if kind == "boolean":
                bad = bad | (value.is_not_null() & ~value.is_in([0.0, 1.0]))
            if "min" in c:
                bad = bad | (value < c["min"]).fill_null(False)
            if "max" in c:
                bad = bad | (value > c["max"]).fill_null(False)
        else:
            value = raw
            bad = pl.lit(False)
            if c.get("categories"):
                bad = value.is_not_null() & ~value.is_in(c["categories"])
        if not c.get("nullable", False):
            bad = bad | value.is_null()
        reason = pl.when(bad).then(pl.lit(f"{name}: not a valid {kind}")).otherwise(reason)
        casts.append(value.alias(name))
    flagged = frame.with_columns(reason.alias("_reason"))
    valid = flagged.filter(pl.col("_reason").is_null()).select(casts[::-1]).unique(maintain_order=True)
    quarantined = flagged.filter(pl.col("_reason").is_not_null())
    os.makedirs(out, exist_ok=True)
    valid.write_parquet(os.path.join(out, "processed.parquet"), compression="snappy")
    quarantined.write_csv(os.path.join(out, "quarantine.csv"))
    return frame.height, valid.height, quarantined.height


def prep_duckdb(spec, path, out):
    import duckdb

    def quote(name):
        return '"' + name.replace('"', '""') + '"'

    def literal(text):
        return "'" + str(text).replace("'", "''") + "'"

    values, reasons = [], []
    for c in spec["columns"]:
        name, kind = quote(c["name"]), c["type"]
        raw = f"NULLIF(TRIM({name}), '')"
        if kind in NUMERIC:
            value = f"TRY_CAST({raw} AS DOUBLE)"
            bad = [f"({value} IS NULL AND {raw} IS NOT NULL)"]
            if kind == "integer":
                bad.append(f"COALESCE({value} <> FLOOR({value}), FALSE)")
            if kind == "boolean":
                bad.append(f"COALESCE({value} NOT IN (0, 1), FALSE)")
            if "min" in c:
                bad.append(f"COALESCE({value} < {c['min']}, FALSE)")
            if "max" in c:
                bad.append(f"COALESCE({value} > {c['max']}, FALSE)")
        else:
            value = raw
            bad = []
            if c.get("categories"):
                bad.append(f"COALESCE({value} NOT IN ({', '.join(literal(v) for v in c['categories'])}), FALSE)")
        if not c.get("nullable", False):
            bad.append(f"{value} IS NULL")
        values.append(f"{value} AS {name}")
        if bad:
            reasons.append(f"WHEN {' OR '.join(bad)} THEN {literal(c['name'] + ': not a valid ' + kind)}")
    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv({literal(path)}, all_varchar = true, header = true)")
    con.execute(f"CREATE TABLE checked AS SELECT *, CASE {' '.join(reasons)} END AS _reason FROM raw")
    con.execute(f"COPY (SELECT DISTINCT {', '.join(values)} FROM checked WHERE _reason IS NULL) TO {literal(os.path.join(out, 'processed.parquet'))} (FORMAT parquet, COMPRESSION snappy)")
    con.execute(f"COPY (SELECT * FROM checked WHERE _reason IS NOT NULL) TO {literal(os.path.join(out, 'quarantine.csv'))} (HEADER)")
    rows_in = con.execute("SELECT COUNT(*) FROM raw").fetchone()[0]
    quarantined = con.execute("SELECT COUNT(*) FROM checked WHERE _reason IS NOT NULL").fetchone()[0]
    rows_out = con.execute(f"SELECT COUNT(*) FROM read_parquet({literal(os.path.join(out, 'processed.parquet'))})").fetchone()[0]
    return rows_in, rows_out, quarantined


def prep(args):
    spec = load_spec(args.spec)
    started = time.perf_counter()
    engine = {"polars": prep_polars, "duckdb": prep_duckdb}[args.engine]
    rows_in, rows_out, quarantined = engine(spec, os.path.abspath(args.file), os.path.abspath(args.out))
    summary = {"engine": args.engine, "rows_in": rows_in, "rows_out": rows_out, "quarantined": quarantined}
    with open(os.path.join(args.out, "_SUCCESS"), "w") as f:
        json.dump(summary, f)
    summary["seconds"] = time.perf_counter() - started
    print(json.dumps(summary))


def train(args):
    spec = load_spec(args.spec)
    _, frame_x, y, train_rows, holdout_rows, params = training_data(spec, args.data)
    x = frame_x.to_numpy(dtype=np.float64)
    poisson = params.get("loss") == "poisson"
    common = {"n_estimators": params.get("max_iter", 100), "learning_rate": params.get("learning_rate", 0.1), "n_jobs": os.cpu_count()}
    if args.engine.startswith("lightgbm"):
        import lightgbm

        model = lightgbm.LGBMRegressor(
            objective="poisson" if poisson else "regression",
            num_leaves=params.get("max_leaf_nodes", 31),
            max_depth=params.get("max_depth") or -1,
            min_child_samples=params.get("min_samples_leaf", 20),
            reg_lambda=params.get("l2_regularization", 0.0),
            max_bin=255,
            data_sample_strategy="goss" if args.engine == "lightgbm-goss" else "bagging",
            random_state=42,
            verbose=-1,
            **common,
        )
    else:
        import xgboost

        model = xgboost.XGBRegressor(
            objective="count:poisson" if poisson else "reg:squarederror",
            tree_method="hist",
            grow_policy="lossguide",
            max_leaves=params.get("max_leaf_nodes", 31),
            max_depth=params.get("max_depth") or 0,
            min_child_weight=0,
            reg_lambda=params.get("l2_regularization", 0.0),
            max_bin=256,
            random_state=42,
            **common,
        )
    fit_started = time.perf_counter()
    model.fit(x[train_rows], y[train_rows])
    fit_seconds = time.perf_counter() - fit_started
    predicted = model.predict(x[holdout_rows])
    rmse = float(np.sqrt(np.mean((predicted - y[holdout_rows]) ** 2)))
    print(json.dumps({"engine": args.engine, "fit_seconds": fit_seconds, "rmse": rmse, "rows_train": len(train_rows)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prep")
    p.add_argument("--engine", choices=["polars", "duckdb"], required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("file")
    p.set_defaults(run=prep)
    t = commands.add_parser("train")
    t.add_argument("--engine", choices=["lightgbm", "lightgbm-goss", "xgboost"], required=True)
    t.add_argument("--spec", required=True)
    t.add_argument("--data", required=True)
    t.set_defaults(run=train)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
