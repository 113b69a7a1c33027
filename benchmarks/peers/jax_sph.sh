#!/usr/bin/env bash
# Builds jax-sph 0.1.0 (LagrangeBench's SPH generator) outside the tree and prints the python to pass
# as `python -m benchmarks.sph --peer-python PY`. Its cases/ and main.py come from its repository at
# the v0.1.0 tag; JAX_SPH_SOURCE, a local clone or mirror of tumaer/jax-sph, stands in for GitHub
# where it is unreachable. GNSIM_PEERS (default ~/.cache/gnsim-peers) is where it goes.
set -euo pipefail
TAG=v0.1.0
root=${GNSIM_PEERS:-$HOME/.cache/gnsim-peers}/jax-sph
mkdir -p "$root"
if [ ! -d "$root/src/.git" ]; then
  git clone -q --no-checkout "${JAX_SPH_SOURCE:-https://github.com/tumaer/jax-sph}" "$root/src"
fi
git -C "$root/src" checkout -q "$TAG" -- cases main.py
python3 -m venv "$root/venv"
# jax-sph 0.1.0 declares Python <3.11 but runs on 3.11 with these pins (the SPH issue's).
"$root/venv/bin/pip" install -q --ignore-requires-python --no-deps jax-sph==0.1.0
"$root/venv/bin/pip" install -q "jax[cpu]==0.4.29" jaxlib==0.4.29 absl-py jraph matscipy omegaconf pandas \
  pyvista h5py "numpy<2"
"$root/venv/bin/python" -c 'import jax_sph.simulate' >/dev/null
echo "$root/venv/bin/python"
