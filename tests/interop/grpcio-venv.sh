#!/usr/bin/env bash
# Makes (once) a Python venv at $1 with the pinned grpcio and grpcio-tools
# from PyPI, for the stock-client test (tests/grpcio.rs). Needs python3 with
# the venv module (.ci/run installs Debian's python3-venv when it is missing).
set -euo pipefail
venv=$1
if [ -f "$venv/.ready" ]; then exit 0; fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  grpcio==1.85.3 grpcio-tools==1.85.1
touch "$venv/.ready"
