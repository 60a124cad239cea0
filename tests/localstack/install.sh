#!/usr/bin/env bash
# Sets up (idempotently) the Python venv that runs LocalStack in host mode, without Docker, with
# this project's Lambda executor plugin (mlops_localstack). Prints the venv's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${MLOPS_LOCALSTACK_VENV:-$HOME/.cache/mlops-localstack-venv}"

if [ ! -x "$venv/bin/python" ]; then
  python=""
  for candidate in python3.13 "$(pyenv root 2>/dev/null || echo /nonexistent)/versions/3.13.0/bin/python3" /usr/bin/python3.13; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then
      python="$candidate"
      break
    fi
  done
  if [ -z "$python" ]; then
    echo "LocalStack needs Python 3.13 (python3.13, or pyenv's 3.13.0)" >&2
    exit 1
  fi
  "$python" -m venv "$venv" >&2
fi
"$venv/bin/pip" install -q --disable-pip-version-check \
  'localstack-core[runtime]==2026.3.0' 'cbor2<6' 'pyopenssl>=25,<26' 'cryptography>=45.0.7,<47' 'service_identity<26' >&2
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$here" >&2
echo "$venv"
