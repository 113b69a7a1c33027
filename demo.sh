#!/usr/bin/env bash
# The whole pipeline on a small default, from a fresh clone with Python 3.11 and pip:
# simulate the small `water` set, train the `quick` model (minutes), score and render it, then
# score and render the shipped model models/water-2d on the same test scenes.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
. .venv/bin/activate
pip install torch==2.13.0 && pip install -e .  # torch first: pip takes the CPU build
python -m simulators.generate water
python -m training.train --config quick --out runs/quick
python -m training.rollout runs/quick
python -m viz.render runs/quick/rollouts/test/test.h5
python -m training.rollout models/water-2d --data datasets/water
python -m viz.render models/water-2d/rollouts/test/test.h5
