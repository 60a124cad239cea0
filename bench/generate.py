"""Seeded generator of benchmark data: the shipped Bikeshare hours scaled up to any row count.

Row i copies hour (i mod 8645) of data/bikeshare/Bikeshare.csv, so every copy keeps the year's
order and the time-ordered holdout stays the last months; the weather readings (temp, atemp, hum,
windspeed) get Gaussian noise (sd 0.02, clipped to [0, 1], 4 decimals) and the counts are redrawn,
bikers ~ Poisson(bikers * exp(N(0, 0.1))) split into casual and registered binomially by the
hour's own share. The same seed and size always give the same bytes.

    python generate.py csv  ROWS OUT.csv [--seed 7]
    python generate.py logs ROWS DIR [--hours 6916] [--files 100] [--version v1] [--seed 8]

`logs` writes ROWS logged inferences (the JSON lines /predict logs) of generated rows into
DIR/2026-01-01/NNNNN.jsonl, cycling over the first HOURS hours only (default: the training
months of the time-ordered split), so that they do not drift from the training data.
"""

import argparse
import json
import os

import numpy as np
import pandas as pd

SOURCE = os.path.join(os.path.dirname(__file__), "..", "data", "bikeshare", "Bikeshare.csv")
WEATHER = ["temp", "atemp", "hum", "windspeed"]
CHUNK = 1_000_000


def rows(source, count, rng):
    """`count` generated rows cycling over `source` from its first row, as a DataFrame."""
    index = np.arange(count) % len(source)
    frame = source.iloc[index].reset_index(drop=True)
    for column in WEATHER:
        frame[column] = np.clip(frame[column].to_numpy() + rng.normal(0, 0.02, count), 0, 1).round(4)
    mean = frame["bikers"].to_numpy() * np.exp(rng.normal(0, 0.1, count))
    bikers = rng.poisson(mean)
    share = np.where(frame["bikers"] > 0, frame["casual"] / frame["bikers"].clip(lower=1), 0.0)
    casual = rng.binomial(bikers, share)
    frame["casual"], frame["registered"], frame["bikers"] = casual, bikers - casual, bikers
    return frame


def write_csv(args):
    source = pd.read_csv(SOURCE)
    rng = np.random.default_rng(args.seed)
    header = True
    with open(args.out, "w", newline="") as out:
        for start in range(0, args.rows, CHUNK):
            count = min(CHUNK, args.rows - start)
            # Keep the cycle aligned across chunks: start each chunk where the last one ended.
            offset = start % len(source)
            rolled = pd.concat([source.iloc[offset:], source.iloc[:offset]], ignore_index=True)
            rows(rolled, count, rng).to_csv(out, index=False, header=header)
            header = False


def write_logs(args):
    source = pd.read_csv(SOURCE).iloc[: args.hours]
    rng = np.random.default_rng(args.seed)
    directory = os.path.join(args.dir, "2026-01-01")
    os.makedirs(directory, exist_ok=True)
    per_file = -(-args.rows // args.files)
    written = 0
    for number in range(args.files):
        count = min(per_file, args.rows - written)
        if count <= 0:
            break
        offset = written % len(source)
        rolled = pd.concat([source.iloc[offset:], source.iloc[:offset]], ignore_index=True)
        frame = rows(rolled, count, rng).drop(columns=["casual", "registered", "bikers"])
        records = frame.to_dict(orient="records")
        with open(os.path.join(directory, f"{number:05}.jsonl"), "w") as f:
            for i, record in enumerate(records):
                line = {
                    "request_id": f"bench-{number}",
                    "prediction_id": f"bench-{number}-{i}",
                    "time": "2026-01-01T00:00:00Z",
                    "model_version": args.version,
                    "features": record,
                    "prediction": 100.0,
                }
                f.write(json.dumps(line) + "\n")
        written += count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("csv")
    c.add_argument("rows", type=int)
    c.add_argument("out")
    c.add_argument("--seed", type=int, default=7)
    c.set_defaults(run=write_csv)
    logs = commands.add_parser("logs")
    logs.add_argument("rows", type=int)
    logs.add_argument("dir")
    logs.add_argument("--hours", type=int, default=6916)
    logs.add_argument("--files", type=int, default=100)
    logs.add_argument("--version", default="v1")
    logs.add_argument("--seed", type=int, default=8)
    logs.set_defaults(run=write_logs)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
