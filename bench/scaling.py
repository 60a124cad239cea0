"""The measurements behind docs/SCALING.md: what one prep shard costs on one core, prep of the
benchmark's 10M rows through the plan (shards on a thread pool), and a whole local run on 10M rows.
Uses the harness's data and timing (GNU time for peak RSS); prints one JSON object.

    python scaling.py --bin DIR --work DIR [--runs 3] [--whole-runs 1]
"""

import argparse
import json
import os
import shutil

import harness


def fresh(mlops, store, spec, data):
    """A new store holding `data` as its one raw file."""
    shutil.rmtree(store, ignore_errors=True)
    harness.run([mlops, "--root", store, "ingest", "--spec", spec, data])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--whole-runs", type=int, default=1)
    args = parser.parse_args()
    harness.WORK = os.path.abspath(args.work)
    mlops = os.path.join(args.bin, "mlops")
    bench_spec = os.path.join(harness.WORK, "bench.toml")
    shipped_spec = os.path.join(harness.ROOT, "specs", "bikeshare.toml")
    data = lambda rows: os.path.join(harness.WORK, "data", f"bikeshare-{rows}.csv")  # noqa: E731
    store = os.path.join(harness.WORK, "scaling-store")
    out = {}

    def prep(rows, env=None):
        """`mlops prep` on a fresh store of `rows` rows, --runs times: prep's own seconds, the
        wall seconds of prep + features, and the peak RSS."""
        walls, peaks, prep_seconds = [], [], []
        for _ in range(args.runs):
            fresh(mlops, store, bench_spec, data(rows))
            wall, peak, stdout = harness.measured([mlops, "--root", store, "prep", "--spec", bench_spec, "--json"], env=env)
            walls.append(wall)
            peaks.append(peak)
            prep_seconds.append(json.loads(stdout)["prep"]["seconds"])
        return {
            "bytes": os.path.getsize(data(rows)),
            "prep_seconds": harness.summary(prep_seconds),
            "prep_features_wall_seconds": harness.summary(walls),
            "rss_mb": harness.summary(peaks),
        }

    # One shard: the 1M-row file is 61 MiB, one 64 MiB shard; one thread, as a 1,769 MB Lambda has.
    out["shard_1m_rows_one_core"] = prep(1_000_000, dict(os.environ, RAYON_NUM_THREADS="1", POLARS_MAX_THREADS="1"))
    # Prep + features of 10M rows through the plan: ten shards on the thread pool.
    out["prep_10m_rows"] = prep(10_000_000)

    # The whole lifecycle's run on 10M rows with the shipped spec (four candidate families).
    walls, peaks = [], []
    for _ in range(args.whole_runs):
        fresh(mlops, store, shipped_spec, data(10_000_000))
        wall, peak, stdout = harness.measured([mlops, "--root", store, "run", "--spec", shipped_spec, "--json"])
        walls.append(wall)
        peaks.append(peak)
        record = json.loads(stdout)
    out["whole_run_10m_rows"] = {
        "wall_seconds": harness.summary(walls),
        "rss_mb": harness.summary(peaks),
        "prep_seconds": record["prep"]["seconds"],
        "candidates": {c["name"]: {"fit_seconds": c["fit_seconds"], "note": c.get("note")} for c in record["candidates"]},
        "promoted": record["promoted"],
    }
    shutil.rmtree(store, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
