#!/usr/bin/env bash
# Benchmark of POST /predict on loopback: trains the shipped Bikeshare model, serves it with the
# release build, and loads it with one-row and 100-row bodies, plain and with explanations
# (?explain=true). A benchmark, not a test. SPEC picks another spec of the same data (for example
# one with a single candidate, to time its explanations). SHADOW=1 times instead the cost of a
# shadow: a model of the first 5,000 hours answers alone, then with the model of all the hours
# scored beside it as a shadow (same spec, so the same kinds of model).
#   [SPEC=FILE] [SHADOW=1] bench/predict.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
connections="${2:-8}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-target}"
cargo build --release -q --bin mlops --bin loadgen
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
trap 'kill -INT "${server:-0}" 2>/dev/null && wait "${server:-0}" 2>/dev/null; rm -rf "$work"' EXIT

spec="${SPEC:-specs/bikeshare.toml}"
mlops() { "$bin/mlops" --root "$work/store" "$@"; }
if [ -n "${SHADOW:-}" ]; then
  head -5001 data/bikeshare/Bikeshare.csv >"$work/first.csv"
  mlops ingest --spec "$spec" "$work/first.csv" >/dev/null
  mlops run --spec "$spec" --json >/dev/null
  mlops ingest --spec "$spec" data/bikeshare/Bikeshare.csv >/dev/null
  mlops run --spec "$spec" --json >/dev/null
  [ "$(mlops models --spec "$spec" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["production"]["version"])')" = v1 ] ||
    mlops rollback --spec "$spec" >/dev/null
else
  mlops ingest --spec "$spec" data/bikeshare/Bikeshare.csv >/dev/null
  mlops run --spec "$spec" --json >/dev/null
fi
python3 - "$work" <<'PY'
import csv, json, sys
rows = []
with open("data/bikeshare/Bikeshare.csv") as f:
    for r in csv.DictReader(f):
        for leak in ("casual", "registered", "bikers"):
            r.pop(leak)
        rows.append({k: (v if k in ("mnth", "weathersit") else float(v)) for k, v in r.items()})
json.dump(rows[5000], open(sys.argv[1] + "/one.json", "w"))
json.dump({"rows": rows[5000:5100]}, open(sys.argv[1] + "/hundred.json", "w"))
PY
"$bin/mlops" --root "$work/store" serve --spec "$spec" --addr 127.0.0.1:0 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q "http://" "$work/serve.log" && break; sleep 0.1; done
address="$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1 | sed 's|http://||')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); server $address, $connections connections, ${seconds}s each"
load() {
  for body in one hundred; do
    result="$("$bin/loadgen" --target "$address" --path "$1" --body "$work/$body.json" --connections "$connections" --seconds "$seconds")"
    rss_kb="$(grep VmRSS /proc/$server/status | awk '{print $2}')"
    echo "$1 $body-row body${2:-}: $result server_rss_mb=$((rss_kb / 1024))"
  done
}
if [ -n "${SHADOW:-}" ]; then
  load /predict " (v1 alone)"
  mlops canary start --spec "$spec" v2 --shadow >/dev/null
  for _ in $(seq 50); do curl -s "http://$address/health" | grep -q challenger && break; sleep 0.1; done
  load /predict " (v1, v2 in the shadow)"
else
  load /predict
  load "/predict?explain=true"
fi
