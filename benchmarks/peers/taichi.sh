#!/usr/bin/env bash
# Builds Taichi's environment outside the tree and prints the python to pass as
# `python -m benchmarks.simulators --taichi-python PY`. GNSIM_PEERS (default ~/.cache/gnsim-peers).
set -euo pipefail
root=${GNSIM_PEERS:-$HOME/.cache/gnsim-peers}/taichi
python3 -m venv "$root/venv"
"$root/venv/bin/pip" install -q taichi
"$root/venv/bin/python" -c 'import taichi' >/dev/null
echo "$root/venv/bin/python"
