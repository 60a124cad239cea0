"""Seeded generator of a real-world-like table for `mlops init` + `mlops run` (issue 13).

Shaped like a public bike-trip export: one row per ride, an RFC 3339 time column with `Z`,
string categoricals of 2 to 4,000 levels (stations follow a Zipf law, so many levels are rare),
numbers with missing values, an identifier unique per row, and one target with about 1 % missing:

- `regression`: `duration` in minutes (skewed, from distance, stations, hour, rider, weather);
- `binary`: `late`, an imbalanced yes/no (about 8 % yes);
- `multiclass`: `rating`, 1 to 5 stars.

The same seed, size and task always give the same bytes.

    python generate_table.py ROWS OUT.csv [--task regression|binary|multiclass] [--seed 13]
"""

import argparse

import numpy as np
import pandas as pd


def table(count, task, rng):
    stations = 4000
    ranks = np.arange(1, stations + 1)
    zipf = 1.0 / ranks**1.1
    zipf /= zipf.sum()
    start = rng.choice(stations, count, p=zipf)
    end = rng.choice(stations, count, p=zipf)
    station_effect = rng.normal(0, 0.35, stations)
    district_of = rng.integers(0, 16, stations)
    district_effect = rng.normal(0, 0.2, 16)
    promo_levels = 105
    promo = rng.choice(promo_levels, count, p=np.r_[0.5, np.full(promo_levels - 1, 0.5 / (promo_levels - 1))])
    promo_effect = np.r_[0.0, rng.normal(0, 0.25, promo_levels - 1)]
    seconds = np.sort(rng.uniform(0, 365 * 86400, count)).astype(np.int64)
    when = pd.to_datetime(1_356_998_400 + seconds, unit="s", utc=True)
    hour = when.hour.to_numpy()
    weekday = when.day_of_week.to_numpy()
    member = rng.random(count) < 0.7
    bike = rng.choice(["classic", "electric", "cargo"], count, p=[0.6, 0.35, 0.05])
    weather = rng.choice(["clear", "cloudy", "rain", "snow", "fog"], count, p=[0.5, 0.3, 0.12, 0.03, 0.05])
    season = np.sin(2 * np.pi * seconds / (365 * 86400))
    temp = np.round(12 + 10 * season + rng.normal(0, 4, count), 1)
    humidity = np.round(rng.uniform(20, 100, count), 0)
    humidity[rng.random(count) < 0.05] = np.nan
    distance = np.round(np.abs(rng.gamma(2.0, 1.2, count) + 0.3 * (start % 7)), 2)
    age = rng.integers(16, 80, count).astype(float)
    age[rng.random(count) < 0.1] = np.nan
    rush = np.isin(hour, [7, 8, 17, 18]) & (weekday < 5)
    log_minutes = (
        1.2
        + 0.55 * np.log1p(distance)
        + station_effect[start]
        + 0.6 * station_effect[end]
        + district_effect[district_of[start]]
        + promo_effect[promo]
        - 0.25 * member
        + 0.2 * rush
        - 0.3 * (bike == "electric")
        + 0.25 * np.isin(weather, ["rain", "snow"])
        + 0.01 * np.abs(temp - 18)
        + rng.normal(0, 0.25, count)
    )
    frame = pd.DataFrame(
        {
            "ride_id": [f"R{i:09d}" for i in rng.permutation(count)],
            "started_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "start_station": [f"st-{s:04d}" for s in start],
            "end_station": [f"st-{s:04d}" for s in end],
            "district": [f"d{district_of[s]:02d}" for s in start],
            "promo": [f"promo-{p:03d}" for p in promo],
            "member": np.where(member, "member", "casual"),
            "bike": bike,
            "weather": weather,
            "temp": temp,
            "humidity": humidity,
            "distance_km": distance,
            "age": age,
        }
    )
    if task == "regression":
        frame["duration"] = np.round(np.exp(log_minutes), 1)
    elif task == "binary":
        z = 2.2 * (log_minutes - np.quantile(log_minutes, 0.5)) - 3.0 + rng.logistic(0, 0.6, count)
        frame["late"] = np.where(z > 0, "yes", "no")
    else:
        z = -(log_minutes - log_minutes.mean()) * 2.0 + 0.4 * (bike == "electric") + rng.logistic(0, 0.5, count)
        frame["rating"] = np.digitize(z, np.quantile(z, [0.1, 0.25, 0.5, 0.8])) + 1
    target = frame.columns[-1]
    missing = rng.random(count) < 0.01
    frame[target] = frame[target].astype(object).where(~missing, None)
    return frame


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=int)
    parser.add_argument("out")
    parser.add_argument("--task", choices=["regression", "binary", "multiclass"], default="regression")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    table(args.rows, args.task, np.random.default_rng(args.seed)).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
