"""Roll a trained GNS out and score it against the simulator and two baselines.

python -m training.rollout RUN_DIR [--checkpoint FILE] [--data DIR] [--split test]
                           [--trajectories K] [--steps S] [--device cpu|cuda]
  RUN_DIR is a training run folder (its best checkpoint) or a shipped model folder (models/NAME).
  writes RUN_DIR/rollouts/SPLIT/SPLIT.h5     (dataset format: `position` = the prediction,
                                              `ground_truth`, `particle_type`; metadata beside it)
         RUN_DIR/rollouts/SPLIT/metrics.json (per method: per-trajectory metrics and curves, aggregate)
  prints the scorecard of the learned model against constant velocity (+ gravity), and every
  row on which the model loses to one of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from gnsim.atomic import write_json_atomic
from gnsim.checkpoint import (
    CheckpointError,
    checkpoint_run,
    run_checkpoint,
    run_data,
    simulator_from_checkpoint,
)
from gnsim.dataset import (
    DatasetError,
    DatasetWriter,
    TrajectoryDataset,
    read_metadata,
)
from gnsim.metrics import SCORECARD, format_table, losing_rows
from gnsim.scorecard import aggregates, score, scorecard_item
from training.config import TrainingError
from training.environment import dataset_folder, pick_device


def evaluate(run_dir: Path, checkpoint_path: Path, data: Path, split: str = "test",
             trajectories: int | None = None, steps: int | None = None, device: str = "auto",
             batch_size: int = 4) -> dict:
    """Roll out and score; writes `run_dir/rollouts/SPLIT/{SPLIT.h5, metadata.json, metrics.json}`
    and returns the metrics."""
    data = dataset_folder(data)
    metadata = read_metadata(data)
    device = pick_device(device)
    simulator, checkpoint = simulator_from_checkpoint(checkpoint_path, metadata)
    simulator = simulator.to(device)
    input_frames = simulator.config.input_frames
    dataset = TrajectoryDataset(data, split, min_frames=input_frames + 1)
    count = len(dataset) if trajectories is None else min(trajectories, len(dataset))
    try:
        items = [scorecard_item(dataset[k], simulator.config) for k in range(count)]
    except ValueError as error:
        raise TrainingError(f"{data}/{split}.h5: {error}") from None
    if steps is not None:
        too_short = [k for k, item in enumerate(items) if len(item["position"]) < input_frames + steps]
        if too_short:
            raise TrainingError(f"{data}/{split}.h5 trajectory {too_short[0]:05d} has fewer than "
                                f"{input_frames + steps} frames for --steps {steps}")
        items = [{**item, "position": item["position"][: input_frames + steps]} for item in items]
    per_method, predicted = score(simulator, items, metadata, batch_size, progress=True)

    out = run_dir / "rollouts" / split
    out.mkdir(parents=True, exist_ok=True)
    writer_metadata = {key: value for key, value in metadata.items()
                       if not key.startswith(("num_trajectories", "sequence_length"))}
    with DatasetWriter(out, dim=metadata["dim"], dt=metadata["dt"], bounds=metadata["bounds"],
                       connectivity_radius=metadata["default_connectivity_radius"],
                       metadata={**writer_metadata, "rollout_of": str(data), "split": split,
                                 "checkpoint": str(checkpoint_path), "checkpoint_step": checkpoint["step"]}) as writer:
        for item, rollout_k in zip(items, predicted):
            position, blow_up = hold_last_finite_frame(rollout_k)
            writer.add(split, position, item["particle_type"].numpy(), ground_truth=item["position"].numpy(),
                       **({"blow_up_frame": np.int64(blow_up)} if blow_up is not None else {}))

    table = aggregates(per_method)
    metrics = {
        "split": split, "data": str(data), "checkpoint": str(checkpoint_path), "step": checkpoint["step"],
        "hard_walls": simulator.config.hard_walls,  # the baselines were kept in the box too
        "rollout_file": str(out / f"{split}.h5"),
        "loses_on": losing_rows(table),
        "methods": {method: {"aggregate": table[method], "trajectories": results}
                    for method, results in per_method.items()},
    }
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def hold_last_finite_frame(position: np.ndarray) -> tuple[np.ndarray, int | None]:
    """A rollout with every frame from the first non-finite one on replaced by the last finite one.

    The dataset format holds finite positions only; the frame where a rollout blew up is kept
    beside it (and in metrics.json), so that a blown-up rollout can still be stored and rendered.
    """
    finite = np.isfinite(position).reshape(len(position), -1).all(axis=1)
    if finite.all():
        return position, None
    first = int(np.argmin(finite))
    held = position.copy()
    held[first:] = position[first - 1]
    return held, first


def summary(metrics: dict) -> str:
    """The scorecard table, the blow-ups with their frames, and every row the model loses on."""
    lines = [format_table({method: result["aggregate"] for method, result in metrics["methods"].items()})]
    for method, result in metrics["methods"].items():
        for trajectory in result["trajectories"]:
            if trajectory.get("blow_up_frame") is not None:
                lines.append(f"{method}: trajectory {trajectory['trajectory']} blew up at frame "
                             f"{trajectory['blow_up_frame']}")
    if metrics.get("hard_walls"):
        lines.append("hard walls: the model's and the baselines' particles are clamped into the box")
    lost = [SCORECARD[key] for key in metrics["loses_on"]]
    lines.append(f"the model loses to a baseline on: {', '.join(lost)}" if lost
                 else "the model beats both baselines on every row of the scorecard")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.rollout", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="training run folder (its best checkpoint, else its last)")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file (default: RUN_DIR/checkpoints/best.pt)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: the one the run trained on)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--trajectories", type=int, help="roll out the first K trajectories (default: all)")
    parser.add_argument("--steps", type=int, help="predicted frames per trajectory (default: the whole trajectory)")
    parser.add_argument("--batch-size", type=int, default=4, help="trajectories rolled out together")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    args = parser.parse_args(argv)
    try:
        if args.run_dir is None and args.checkpoint is None:
            raise TrainingError("give a RUN_DIR or --checkpoint FILE")
        run_dir = args.run_dir or checkpoint_run(args.checkpoint)
        if not run_dir.is_dir():
            raise TrainingError(f"{run_dir}: no such run or model folder")
        checkpoint = args.checkpoint or run_checkpoint(run_dir)
        data = args.data or run_data(run_dir)
        for name, value in (("--trajectories", args.trajectories), ("--steps", args.steps), ("--batch-size", args.batch_size)):
            if value is not None and value < 1:
                raise TrainingError(f"{name} must be at least 1, got {value}")
        metrics = evaluate(run_dir, checkpoint, data, args.split, args.trajectories, args.steps, args.device,
                           args.batch_size)
    except (TrainingError, DatasetError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(summary(metrics))
    print(f"wrote {metrics['rollout_file']} and the metrics.json beside it")


if __name__ == "__main__":
    main()
