"""The spec file and the fitted feature transform, shared by the reference pipeline and server."""

import tomllib

import numpy as np
import pandas as pd

UNITS = {"days": "D", "hours": "h", "minutes": "min", "seconds": "s"}


def load_spec(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def feature_columns(spec):
    skip = set(spec.get("ignore", [])) | {spec["target"]["column"]} | set(spec.get("features", {}).get("exclude", []))
    return [c for c in spec["columns"] if c["name"] not in skip]


class Features:
    """The fitted transform, saved inside the model artifact so serving applies the same one."""

    def __init__(self, spec):
        self.spec = spec
        self.columns = feature_columns(spec)
        self.time = spec.get("time")
        feats = spec.get("features", {})
        self.parts = feats.get("time_parts", [])
        self.cyclical = set(feats.get("cyclical", []))
        self.levels = {}

    def fit(self, frame):
        for c in self.columns:
            if c["type"] == "categorical":
                self.levels[c["name"]] = list(c.get("categories") or sorted(frame[c["name"]].dropna().unique()))
        return self

    def transform(self, frame):
        out = {}
        for c in self.columns:
            name = c["name"]
            if c["type"] == "categorical":
                codes = pd.Categorical(frame[name], categories=self.levels[name]).codes
                out[name] = np.where(codes < 0, np.nan, codes).astype(float)
            else:
                out[name] = frame[name].astype(float).to_numpy()
        if self.time:
            t = timestamps(frame, self.time)
            periods = {"hour": (t.dt.hour, 24), "weekday": (t.dt.weekday, 7), "month": (t.dt.month - 1, 12)}
            for part in self.parts:
                values, period = periods[part]
                values = values.to_numpy().astype(float)
                out[part] = values
                if part in self.cyclical:
                    out[part + "_sin"] = np.sin(2 * np.pi * values / period)
                    out[part + "_cos"] = np.cos(2 * np.pi * values / period)
        return pd.DataFrame(out, index=frame.index)


def timestamps(frame, time):
    if "column" in time:
        return pd.to_datetime(frame[time["column"]])
    t = pd.Series(pd.Timestamp(time["origin"]), index=frame.index)
    for offset in time["offsets"]:
        t = t + pd.to_timedelta(frame[offset["column"]].astype("int64") + offset.get("shift", 0), unit=UNITS[offset["unit"]])
    return t
