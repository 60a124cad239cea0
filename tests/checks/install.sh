#!/usr/bin/env bash
# Sets up (idempotently) the Python venv of the deployment checks: cfn-lint for infra/, moto's
# server, whose IAM access control evaluates the template's role policies (tests/aws_iam.rs), and
# Schemathesis, which tests the served API against its OpenAPI document (tests/contract.rs).
# Prints the venv's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${MLOPS_CHECKS_VENV:-$HOME/.cache/mlops-checks-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
echo "$venv"
