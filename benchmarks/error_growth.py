"""How fast a trained model's one-step map amplifies small errors about clean data; one JSON line.

About clean windows of a split (the simulator's own input frames), the map from the model's
inputs (the last `input_frames` positions of every particle) to the same window one step on is
linearised with forward-mode differentiation, and a random perturbation is pushed through it
`--steps` times (power iteration). The growth factor per step is (|J^k v| / |v|)^(1/k). Extrapolating
at constant velocity alone reads about 1.1 at k = 40 (a double eigenvalue of 1 grows like k); a
model whose corrections overshoot reads well above it, and its rollouts then boil away from the
data even where the physics is calm.

    python benchmarks/error_growth.py runs/quick [--data DIR] [--split valid]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
# benchmarks/simulators.py would shadow the `simulators` package: import it from the repository instead.
sys.path[:] = [str(HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]
from gnsim.checkpoint import load_run
from gnsim.dataset import DatasetError, TrajectoryDataset
from training.config import TrainingError
from training.environment import add_run_arguments


def growth_per_step(simulator, window: torch.Tensor, particle_type: torch.Tensor, steps: int) -> float:
    """Per-step growth of a random perturbation of `window` [N, C, D] under the linearised map."""
    edge_index = simulator.connectivity(window[:, -1])  # fixed: the perturbations are infinitesimal

    def one_step(sequence: torch.Tensor) -> torch.Tensor:
        next_position = simulator.predict_position(sequence, particle_type, edge_index)
        return torch.cat([sequence[:, 1:], next_position[:, None]], dim=1)

    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(window.shape, generator=generator)
    log_growth = 0.0
    with torch.no_grad():  # forward-mode only: no graph for the weights
        for _ in range(steps):
            _, direction = torch.func.jvp(one_step, (window,), (direction / direction.norm(),))
            log_growth += float(direction.norm().log())
    return float(np.exp(log_growth / steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, split="valid")
    parser.add_argument("--trajectories", type=int, default=4, help="the first K trajectories of the split")
    parser.add_argument("--frames", default="20,120", help="frames the windows end at: in the fall, and late")
    parser.add_argument("--steps", type=int, default=40, help="power-iteration steps")
    args = parser.parse_args()
    try:
        run = load_run(args.run, args.data)
        trajectories = TrajectoryDataset(run.data, args.split)
        frames = [int(frame) for frame in args.frames.split(",")]
    except (DatasetError, TrainingError) as error:
        sys.exit(str(error))
    except ValueError:
        sys.exit(f"--frames {args.frames!r}: give comma-separated frame numbers")
    if args.trajectories < 1 or args.steps < 1:
        sys.exit("--trajectories and --steps must be at least 1")
    c = run.simulator.config.input_frames
    windows = {}  # all checked before the first (slow) power iteration
    for k in range(min(args.trajectories, len(trajectories))):
        position, particle_type = trajectories[k]["position"], trajectories[k]["particle_type"]
        for frame in frames:
            if not c <= frame <= len(position):
                sys.exit(f"--frames: {frame} is outside {c}..{len(position)} for trajectory {k}")
            windows[f"{k}@{frame}"] = (position[frame - c : frame].transpose(0, 1).contiguous(), particle_type)
    growth = {key: round(growth_per_step(run.simulator, window, particle_type, args.steps), 3)
              for key, (window, particle_type) in windows.items()}
    print(json.dumps({"checkpoint": str(run.checkpoint), "step": run.step, "data": str(run.data),
                      "split": args.split, "power_steps": args.steps,
                      "median_growth_per_step": round(float(np.median(list(growth.values()))), 3), "growth_per_step": growth}))


if __name__ == "__main__":
    main()
