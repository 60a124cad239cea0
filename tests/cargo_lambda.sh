#!/usr/bin/env bash
# The README's "Local development with cargo-lambda" section, run as it is written: cargo-lambda
# and zig pinned from PyPI; `cargo lambda build --release --output-format zip`; the dev stack on
# LocalStack (dev-stack up, deploying those zips); `cargo lambda watch` on loopback with the dev
# stack's environment; then `cargo lambda invoke` of every function with its sample event, in
# pipeline order, ending in a prediction. First, a function started without its configuration
# must fail the invoke at once, naming the variable. Needs what .ci/run installs (LocalStack's
# venv) and about 35 minutes on 2 cores with a cold release build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mlops-target}"

tools="$HOME/.cache/mlops-cargo-lambda-venv"
[ -x "$tools/bin/python" ] || python3 -m venv "$tools"
"$tools/bin/pip" install -q --disable-pip-version-check cargo-lambda==1.9.2 ziglang==0.17.1
export PATH="$tools/bin:$PATH"
cargo lambda --version

work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
watch_pid=""
stop_watch() {
  if [ -n "$watch_pid" ]; then
    kill -TERM -- "-$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
    watch_pid=""
  fi
}
cleanup() {
  stop_watch
  cargo run -q --locked -p mlops-devstack -- --dir "$work/dev" down || true
}
trap cleanup EXIT

# `cargo lambda watch` in its own process group, on loopback, with an env file; waits until it
# listens.
watch_port="$(free_port)"
start_watch() {
  setsid cargo lambda watch --locked --invoke-address 127.0.0.1 --invoke-port "$watch_port" --env-file "$1" > "$2" 2>&1 &
  watch_pid=$!
  for _ in $(seq 1 120); do
    if python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', $watch_port), 1)" 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "cargo lambda watch did not start:" >&2
  cat "$2" >&2
  return 1
}

# `cargo lambda invoke NAME --data-file EVENT`; prints the answer's first 300 characters.
invoke() {
  local name="$1" event="$2" answer
  if ! answer="$(timeout 900 cargo lambda invoke "$name" --invoke-address 127.0.0.1 --invoke-port "$watch_port" \
      --data-file "$event" --output-format json 2>&1)"; then
    echo "FAILED: $name $event: $answer" >&2
    return 1
  fi
  printf '%-9s %-28s %s\n' "$name" "${event#"$work/"}" "$(printf '%s' "$answer" | tr -d '\n' | cut -c1-300)"
}

echo "== a function missing its configuration fails the invoke at once"
printf 'AWS_REGION=us-east-1\nAWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nMLOPS_BUCKET=none\n' > "$work/incomplete.env"
start_watch "$work/incomplete.env" "$work/watch-incomplete.log"
started=$(date +%s)
if answer="$(timeout 900 cargo lambda invoke predict --invoke-address 127.0.0.1 --invoke-port "$watch_port" \
    --data-file events/predict.json --output-format json 2>&1)"; then :; fi
echo "after $(( $(date +%s) - started )) s (building predict included): $answer" | tr -d '\n' | cut -c1-400; echo
case "$answer" in
  *"environment variable MLOPS_DATASET is not set"*) ;;
  *) echo "the invoke did not report the missing variable" >&2; exit 1 ;;
esac
stop_watch

echo "== cargo lambda build --release --output-format zip"
started=$(date +%s)
cargo lambda build --release --locked --output-format zip
echo "built in $(( $(date +%s) - started )) s:"
for zip in "$CARGO_TARGET_DIR"/lambda/*/bootstrap.zip; do
  printf '  %-40s %8d bytes\n' "${zip#"$CARGO_TARGET_DIR/"}" "$(stat -c %s "$zip")"
done

echo "== dev-stack up: LocalStack, the template with these zips, the spec and the data"
cargo run -q --locked -p mlops-devstack -- --dir "$work/dev" up --port "$(free_port)" --zips "$CARGO_TARGET_DIR/lambda"

echo "== cargo lambda watch, and each function invoked with its sample event in pipeline order"
start_watch "$work/dev/env" "$work/watch.log"
for step in prep prep-shard prep-merge prep-bucket prep-finish; do
  invoke prep "events/$step.json"
done
invoke features events/features.json
# train.json is the Map iteration of the first candidate; the state machine runs one per
# candidate, so each is invoked with its name in that event.
for candidate in $(python3 -c 'import json; print(" ".join(json.load(open("events/train.json"))["features"]["candidate_names"]))'); do
  python3 -c 'import json, sys; e = json.load(open("events/train.json")); e["candidate"] = sys.argv[1]; print(json.dumps(e))' "$candidate" > "$work/train-$candidate.json"
  invoke train "$work/train-$candidate.json"
done
invoke train events/train-collect.json
invoke register events/register.json
for step in score score-shard score-finish; do
  invoke score "events/$step.json"
done
invoke drift events/drift.json
invoke trigger events/trigger.json
invoke predict events/predict.json
echo "every function answered"
