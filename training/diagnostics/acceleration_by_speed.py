"""A trained model's one-step acceleration against the simulator's, binned by falling speed; one JSON line.

On clean windows of a split (inputs and targets from the simulator), particles more than
`--height` above the floor are binned by their speed along gravity. Per bin: the simulator's and
the model's mean acceleration along gravity in units of g (1 is free fall, 0 is rest, negative
is being stopped) and the RMS difference. A model that learned free fall tracks the simulator in
every bin; one that reads "fast" as "about to hit something" decelerates fast water in mid-air.

    python -m training.diagnostics.acceleration_by_speed runs/quick [--data DIR] [--split test]
"""

import argparse
import itertools
import json
import sys

import numpy as np
import torch

from gnsim.checkpoint import load_run
from gnsim.dataset import DatasetError, TrajectoryDataset
from gnsim.domain import Domain
from training.config import TrainingError
from training.environment import add_run_arguments

SPEED_EDGES = (0.0, 0.5, 1.0, 1.5, 2.0, np.inf)  # m/s along gravity


def accelerations(simulator, trajectory: dict, dt: float, down: np.ndarray, frames: int, stride: int):
    """Speed along gravity, true and predicted acceleration along gravity, for each (window, particle)."""
    position, particle_type = trajectory["position"], trajectory["particle_type"]
    c = simulator.config.input_frames
    speed, true, predicted, last = [], [], [], []
    for start in range(0, min(frames, len(position) - c), stride):
        window = position[start : start + c].transpose(0, 1)
        with torch.inference_mode():
            next_position = simulator.predict_position(window, particle_type).numpy()
        window = window.numpy()
        previous, current = window[:, -2], window[:, -1]
        speed.append((current - previous) @ down / dt)
        true.append((position[start + c].numpy() - 2 * current + previous) @ down / dt**2)
        predicted.append((next_position - 2 * current + previous) @ down / dt**2)
        last.append(current)
    return np.concatenate(speed), np.concatenate(true), np.concatenate(predicted), np.concatenate(last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, split="test")
    parser.add_argument("--frames", type=int, default=60, help="window starts 0..frames: the fall and the first impacts")
    parser.add_argument("--stride", type=int, default=2, help="frames between window starts")
    parser.add_argument("--height", type=float, default=0.1, help="metres above the floor a particle must be")
    args = parser.parse_args()
    try:
        run = load_run(args.run, args.data)
        trajectories = TrajectoryDataset(run.data, args.split)
    except (DatasetError, TrainingError) as error:
        sys.exit(str(error))
    simulator, metadata, data = run.simulator, run.metadata, run.data
    try:
        gravity = Domain.from_metadata(metadata).gravity
    except ValueError as error:
        sys.exit(f"{data}: {error}")
    if gravity is None or not gravity.any():
        sys.exit(f"{data}: the metadata has no nonzero gravity to bin by")
    g = float(np.linalg.norm(gravity))
    down = gravity / g
    axis = int(np.argmax(np.abs(down)))
    floor = metadata["bounds"][axis][0 if down[axis] < 0 else 1]

    parts = [accelerations(simulator, trajectories[k], metadata["dt"], down, args.frames, args.stride)
             for k in range(len(trajectories))]
    speed, true, predicted, last = (np.concatenate(column) for column in zip(*parts))
    aloft = np.abs(last[:, axis] - floor) > args.height
    bins = []
    for low, high in itertools.pairwise(SPEED_EDGES):
        chosen = aloft & (speed >= low) & (speed < high)
        if not chosen.any():
            continue
        bins.append({
            "speed_m_per_s": [low, None if np.isinf(high) else high], "samples": int(chosen.sum()),
            "simulator_g": float(true[chosen].mean() / g), "model_g": float(predicted[chosen].mean() / g),
            "rms_error_g": float(np.sqrt(np.mean((predicted[chosen] - true[chosen]) ** 2)) / g),
        })
    print(json.dumps({"checkpoint": str(run.checkpoint), "step": run.step, "data": str(data),
                      "split": args.split, "height_m": args.height, "bins": bins}))


if __name__ == "__main__":
    main()
