#!/usr/bin/env bash
# This project against the reference Python pipeline (bench/reference), side by side on the same
# machine and generated data; writes docs/BENCHMARKS.md. A benchmark, not a test.
#   bench/run.sh [SIZES] [SECONDS] [--runs N] [--only SECTIONS]   e.g. bench/run.sh 100000,1000000 5 --runs 3
# --only drift,serve reruns those sections and keeps the others from the last run.
# Needs: cargo, Python >= 3.11 (pyenv's 3.13 when present), GNU time; about 1 GB of disk per
# million rows under $HOME/.cache/mlops-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-100000,1000000,10000000}"
seconds="${2:-10}"
shift $(( $# < 2 ? $# : 2 ))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-target}"
work="${MLOPS_BENCH_DIR:-$HOME/.cache/mlops-bench}"
venv="$work/venv"

python=python3
if command -v pyenv >/dev/null && pyenv prefix 3.13.0 >/dev/null 2>&1; then
  python="$(pyenv prefix 3.13.0)/bin/python3"
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install -q -r bench/requirements.txt

# Every binary of the workspace: mlops, loadgen and the Lambda functions.
cargo build --release --locked -q --bins

"$venv/bin/python" bench/harness.py --bin "$CARGO_TARGET_DIR/release" --work "$work" --sizes "$sizes" --seconds "$seconds" "$@"
