"""Rollout speed of the learned simulator against the MLS-MPM simulator on the same scene.

Prints one JSON line: frames/s of the simulator producing a `water` recipe trajectory, and frames/s
of a GNS (the `quick` or `paper` shape; weights from `--checkpoint`, else freshly initialised,
which costs the same) rolling the same scene out from its first 6 frames, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Run as `python benchmarks/rollout.py`, this folder heads sys.path and would shadow `training`.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
import torch

from gnsim.checkpoint import simulator_from_checkpoint
from gnsim.dataset import MotionStatistics
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig
from gnsim.rollout import rollout
from simulators import simulate
from simulators.recipes import RECIPES
from training.config import load_config


def scene_metadata(scene: dict, position: np.ndarray, particle_type: np.ndarray) -> dict:
    """The dataset metadata a model of this scene needs (statistics from this trajectory)."""
    statistics = MotionStatistics(scene["dim"])
    statistics.add(position, particle_type)
    return {"dim": scene["dim"], "bounds": np.stack(scene["domain"], axis=1).tolist(),
            "default_connectivity_radius": 5 * scene["particle_spacing"], **statistics.as_metadata()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="water", choices=sorted(RECIPES))
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--config", default="quick", help="model shape: quick or paper")
    parser.add_argument("--checkpoint", type=Path, help="trained weights (their shape wins over --config)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    scene = RECIPES[args.recipe].scene(np.random.default_rng(args.seed), "small", args.frames)
    simulate(scene, device=args.device)  # warm-up: compiles the kernels
    start = time.perf_counter()
    position, particle_type = simulate(scene, device=args.device)
    simulator_seconds = time.perf_counter() - start

    metadata = scene_metadata(scene, position, particle_type)
    if args.checkpoint:
        model, _ = simulator_from_checkpoint(args.checkpoint, metadata)
    else:
        torch.manual_seed(args.seed)
        model = LearnedSimulator(SimulatorConfig.from_dict(load_config(args.config)), metadata).eval()
    model = model.to(args.device)
    truth = torch.from_numpy(position)
    types = torch.from_numpy(particle_type).long()
    input_frames = model.config.input_frames
    rollout(model, truth, types, steps=5)  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    rollout(model, truth, types)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    model_seconds = time.perf_counter() - start

    simulated_frames, predicted_frames = len(position) - 1, len(position) - input_frames
    print(json.dumps({
        "benchmark": "rollout", "device": args.device, "recipe": args.recipe, "particles": len(particle_type),
        "model": "checkpoint" if args.checkpoint else args.config,
        "connectivity_radius": model.connectivity_radius, "threads": torch.get_num_threads(),
        "simulator_frames_per_s": simulated_frames / simulator_seconds,
        "model_frames_per_s": predicted_frames / model_seconds,
        "model_over_simulator": (predicted_frames / model_seconds) / (simulated_frames / simulator_seconds),
    }))


if __name__ == "__main__":
    main()
