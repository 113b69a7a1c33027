"""How predictable a recipe dataset's test trajectories are; one JSON line.

Each test scene is simulated again with every block's initial velocity nudged by `--nudge` m/s
along x, and scored like a learned model (whole-rollout position MSE from frame 6, gnsim.metrics)
against the recorded trajectory, next to constant velocity. A chaotic flow would make the
nudged simulator no better than the baseline; a ratio far above a learned model's says that the
gap between that model and the simulator is the model's, not the flow's.

    python -m training.diagnostics.predictability [--data datasets/water] [--nudge 0.1]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gnsim.baselines import constant_velocity_rollout
from gnsim.dataset import DatasetError, TrajectoryDataset, read_metadata
from gnsim.metrics import horizon_mse, position_mse
from simulators.generate import recipe_scene
from simulators.simulate import simulate


def nudged(scene: dict, nudge: float) -> dict:
    blocks = [{**block, "velocity": [block["velocity"][0] + nudge, *block["velocity"][1:]]} for block in scene["blocks"]]
    return {**scene, "blocks": blocks}


def rollout_mse(predicted, truth, particle_type) -> float:
    return horizon_mse(position_mse(predicted, truth, particle_type))["mse_rollout"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("datasets/water"))
    parser.add_argument("--nudge", type=float, default=0.1, help="added to each block's initial x velocity (m/s)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.nudge <= 0:
        sys.exit(f"--nudge must be positive, got {args.nudge}: unnudged, the simulator repeats its dataset exactly")
    try:
        metadata = read_metadata(args.data)
        test = TrajectoryDataset(args.data, "test")
    except DatasetError as error:
        sys.exit(str(error))
    if "recipe" not in metadata:
        sys.exit(f"{args.data}: not a recipe dataset (its metadata names no recipe to simulate again)")
    simulator_mse, baseline_mse = [], []
    for k in range(len(test)):
        truth, particle_type = test[k]["position"].numpy(), test[k]["particle_type"].numpy()
        scene = recipe_scene(metadata["recipe"], "test", k, metadata["seed"], metadata["size"], len(truth))
        position, _ = simulate(nudged(scene, args.nudge), device=args.device)
        simulator_mse.append(rollout_mse(position, truth, particle_type))
        baseline_mse.append(rollout_mse(constant_velocity_rollout(truth, particle_type), truth, particle_type))
    print(json.dumps({
        "data": str(args.data), "nudge_m_per_s": args.nudge, "trajectories": len(test),
        "nudged_simulator_rollout_mse": float(np.mean(simulator_mse)),
        "constant_velocity_rollout_mse": float(np.mean(baseline_mse)),
        "constant_velocity_over_nudged_simulator": float(np.mean(baseline_mse) / np.mean(simulator_mse)),
        "per_trajectory_nudged_simulator_mse": simulator_mse,
    }))


if __name__ == "__main__":
    main()
