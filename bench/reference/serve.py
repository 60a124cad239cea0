"""The reference /predict service: FastAPI + uvicorn, the joblib artifact of pipeline.py, request
validation generated from the spec (pydantic), and inference logging in batches (JSON lines).

    MODEL=model.joblib SPEC=spec.toml LOGS=dir uvicorn serve:app --host 127.0.0.1 --port 8000
"""

import json
import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Literal, Optional, Union

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, Field, create_model

from features import feature_columns, load_spec

SPEC = load_spec(os.environ["SPEC"])
ARTIFACT = joblib.load(os.environ["MODEL"])
LOGS = os.environ["LOGS"]
TYPES = {"integer": int, "float": float, "boolean": bool, "string": str}


def field(column):
    kind = Literal[tuple(column["categories"])] if column.get("categories") else TYPES.get(column["type"], str)
    if column.get("nullable", False):
        kind = Optional[kind]
    return (kind, Field(..., ge=column.get("min"), le=column.get("max")) if column["type"] in ("integer", "float") else ...)


# Every input column the transform reads: the features, plus the columns that build the time.
inputs = {c["name"] for c in feature_columns(SPEC)} | {o["column"] for o in SPEC.get("time", {}).get("offsets", [])}
Row = create_model("Row", **{c["name"]: field(c) for c in SPEC["columns"] if c["name"] in inputs})
Batch = create_model("Batch", rows=(list[Row], ...))


class Log:
    """Buffers logged predictions and writes them in batches of a file each."""

    def __init__(self, directory, every=1000):
        self.directory, self.every, self.lines, self.lock = directory, every, [], threading.Lock()
        os.makedirs(directory, exist_ok=True)

    def add(self, lines):
        with self.lock:
            self.lines.extend(lines)
            if len(self.lines) < self.every:
                return
            lines, self.lines = self.lines, []
        with open(os.path.join(self.directory, f"{time.time_ns()}.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")


log = Log(LOGS)
app = FastAPI()


@app.get("/health")
def health():
    return {"status": "ok", "model_version": ARTIFACT["version"]}


@app.post("/predict")
def predict(body: Union[Batch, Row]):
    rows = body.rows if isinstance(body, Batch) else [body]
    records = [r.model_dump() for r in rows]
    frame = pd.DataFrame.from_records(records)
    predictions = ARTIFACT["model"].predict(ARTIFACT["features"].transform(frame)).tolist()
    request_id, at = str(uuid.uuid4()), datetime.now(timezone.utc).isoformat()
    log.add([
        json.dumps({"request_id": request_id, "prediction_id": str(uuid.uuid4()), "time": at, "model_version": ARTIFACT["version"], "features": r, "prediction": p})
        for r, p in zip(records, predictions)
    ])
    return {"model_version": ARTIFACT["version"], "predictions": predictions}
