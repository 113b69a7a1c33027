#!/usr/bin/env bash
# Builds geoelements/gns's environment outside the tree and prints the python to pass as
# `python -m benchmarks.training --peer-python PY`. About 20 minutes: torch-cluster builds from
# source (PyPI has no wheel for it). GNSIM_PEERS (default ~/.cache/gnsim-peers) is where it goes;
# GNS_SOURCE, a local clone or mirror of geoelements/gns, stands in for GitHub where it is unreachable.
set -euo pipefail
COMMIT=3b8fb5cc143690f061a721b63bde3e49eb8f8520  # "fix message passing (#94)"
root=${GNSIM_PEERS:-$HOME/.cache/gnsim-peers}/gns
mkdir -p "$root"
if [ ! -d "$root/src/.git" ]; then
  git clone -q --no-checkout "${GNS_SOURCE:-https://github.com/geoelements/gns}" "$root/src"
fi
# Only the package folder: a mirror may lack the repository's large images.
git -C "$root/src" checkout -q "$COMMIT" -- gns
python3 -m venv "$root/venv"
"$root/venv/bin/pip" install -q torch==2.13.0  # the CPU build gnsim is measured with
"$root/venv/bin/pip" install -q torch-geometric==2.6.1 absl-py dm-tree numpy tqdm
"$root/venv/bin/pip" install -q --no-build-isolation torch-cluster  # compiles against that torch
# gns is a folder of modules, not a package on PyPI: put its source on the venv's path.
site=$("$root/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$root/src" > "$site/gns-source.pth"
"$root/venv/bin/python" -c 'import gns.train, torch_cluster' >/dev/null
echo "$root/venv/bin/python"
