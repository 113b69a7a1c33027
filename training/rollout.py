"""Roll a trained GNS out and score it against the simulator and two baselines.

python -m training.rollout RUN_DIR [--checkpoint FILE] [--data DIR] [--split test]
                           [--trajectories K] [--steps S] [--device cpu|cuda]
  writes RUN_DIR/rollouts/SPLIT.h5      (dataset format: `position` = the prediction,
                                          `ground_truth`, `particle_type`; metadata beside it)
         RUN_DIR/rollouts/metrics.json  (per method: per-trajectory metrics and curves, aggregate)
  prints a table of the learned model against constant velocity (+ gravity).
"""

from __future__ import annotations

import argparse
import sys
from itertools import groupby
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from gnsim.baselines import baseline_predictions
from gnsim.dataset import (
    DatasetError,
    DatasetWriter,
    TrajectoryDataset,
    read_metadata,
    write_json_atomic,
)
from gnsim.learned_simulator import LearnedSimulator
from gnsim.metrics import aggregate, evaluate_rollout, format_table
from gnsim.rollout import rollout
from training.config import TrainingError
from training.train import dataset_folder, pick_device, simulator_from_checkpoint


@torch.inference_mode()
def one_step_predictions(simulator: LearnedSimulator, position: torch.Tensor, particle_type: torch.Tensor,
                         windows_per_batch: int = 16) -> torch.Tensor:
    """The model's next-frame prediction from every true history window: [T - C, N, D]."""
    device = next(simulator.parameters()).device
    input_frames = simulator.config.input_frames
    position, particle_type = position.to(device), particle_type.to(device)
    starts = list(range(len(position) - input_frames))
    predictions = []
    for chunk in (starts[i : i + windows_per_batch] for i in range(0, len(starts), windows_per_batch)):
        # Several windows of one trajectory as the graphs of one batch.
        windows = torch.cat([position[s : s + input_frames].transpose(0, 1) for s in chunk])
        batch = torch.arange(len(chunk), device=device).repeat_interleave(position.shape[1])
        targets = torch.cat([position[s + input_frames] for s in chunk])
        predicted = simulator.predict_position(windows, particle_type.repeat(len(chunk)), batch=batch,
                                               kinematic_position=targets)
        predictions.append(predicted.reshape(len(chunk), *position.shape[1:]))
    return torch.cat(predictions)


def evaluate(run_dir: Path, checkpoint_path: Path, data: Path, split: str = "test",
             trajectories: int | None = None, steps: int | None = None, device: str = "auto",
             batch_size: int = 4) -> dict:
    """Roll out, score, and write `run_dir/rollouts/{split}.h5` and `metrics.json`; returns the metrics."""
    data = dataset_folder(data)
    metadata = read_metadata(data)
    device = pick_device(device)
    simulator, checkpoint = simulator_from_checkpoint(checkpoint_path, metadata)
    simulator = simulator.to(device)
    input_frames = simulator.config.input_frames
    dataset = TrajectoryDataset(data, split, min_frames=input_frames + 1)
    count = len(dataset) if trajectories is None else min(trajectories, len(dataset))
    items = [dataset[k] for k in range(count)]
    if steps is not None:
        too_short = [k for k, item in enumerate(items) if len(item["position"]) < input_frames + steps]
        if too_short:
            raise TrainingError(f"{data}/{split}.h5 trajectory {too_short[0]:05d} has fewer than "
                                f"{input_frames + steps} frames for --steps {steps}")
        items = [{**item, "position": item["position"][: input_frames + steps]} for item in items]

    # Trajectories of equal length roll out together, as the graphs of one batch.
    predicted: dict[int, np.ndarray] = {}
    order = sorted(range(count), key=lambda k: len(items[k]["position"]))
    groups = [list(group) for _, group in groupby(order, key=lambda k: len(items[k]["position"]))]
    chunks = [group[i : i + batch_size] for group in groups for i in range(0, len(group), batch_size)]
    for chunk in tqdm(chunks, desc=f"rollout {split}", disable=None):
        position = torch.cat([items[k]["position"] for k in chunk], dim=1)
        particle_type = torch.cat([items[k]["particle_type"] for k in chunk])
        sizes = torch.tensor([len(items[k]["particle_type"]) for k in chunk])
        batch = torch.arange(len(chunk)).repeat_interleave(sizes)
        output = rollout(simulator, position, particle_type, batch=batch, progress=True).cpu().numpy()
        for k, part in zip(chunk, np.split(output, np.cumsum(sizes.numpy())[:-1], axis=1)):
            predicted[k] = part

    per_method: dict[str, list[dict]] = {}
    out = run_dir / "rollouts"
    out.mkdir(parents=True, exist_ok=True)
    writer_metadata = {key: value for key, value in metadata.items() if not key.startswith(("num_trajectories", "sequence_length"))}
    with DatasetWriter(out, dim=metadata["dim"], dt=metadata["dt"], bounds=metadata["bounds"],
                       connectivity_radius=metadata["default_connectivity_radius"],
                       metadata={**writer_metadata, "rollout_of": str(data), "split": split,
                                 "checkpoint": str(checkpoint_path), "checkpoint_step": checkpoint["step"]}) as writer:
        for k in tqdm(range(count), desc="metrics", disable=None):
            truth = items[k]["position"].numpy()
            particle_type = items[k]["particle_type"].numpy()
            one_step = one_step_predictions(simulator, items[k]["position"], items[k]["particle_type"]).cpu().numpy()
            runs = {"model": (predicted[k], one_step), **baseline_predictions(truth, particle_type, metadata, input_frames,
                                                                                 simulator.config.hard_walls)}
            for method, (trajectory, one_step_trajectory) in runs.items():
                scores = evaluate_rollout(trajectory, truth, particle_type, metadata, one_step=one_step_trajectory,
                                          input_frames=input_frames)
                per_method.setdefault(method, []).append({"trajectory": k, **scores})
            position, blow_up = hold_last_finite_frame(predicted[k])
            writer.add(split, position, particle_type, ground_truth=truth,
                       **({"blow_up_frame": np.int64(blow_up)} if blow_up is not None else {}))

    metrics = {
        "split": split, "data": str(data), "checkpoint": str(checkpoint_path), "step": checkpoint["step"],
        "hard_walls": simulator.config.hard_walls,  # the baselines were kept in the box too
        "methods": {method: {"aggregate": aggregate(results), "trajectories": results}
                    for method, results in per_method.items()},
    }
    model_mse = metrics["methods"]["model"]["aggregate"].get("mse_rollout")
    baseline_mse = metrics["methods"]["constant_velocity"]["aggregate"].get("mse_rollout")
    metrics["constant_velocity_mse_over_model_mse"] = (
        baseline_mse / model_mse if model_mse and baseline_mse is not None else None)
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
    """The aggregate table, the blow-ups with their frames, and the model's gain over constant velocity."""
    lines = [format_table({method: result["aggregate"] for method, result in metrics["methods"].items()})]
    for method, result in metrics["methods"].items():
        for trajectory in result["trajectories"]:
            if trajectory.get("blow_up_frame") is not None:
                lines.append(f"{method}: trajectory {trajectory['trajectory']} blew up at frame "
                             f"{trajectory['blow_up_frame']}")
    if metrics.get("hard_walls"):
        lines.append("hard walls: the model's and the baselines' particles are clamped into the box")
    ratio = metrics.get("constant_velocity_mse_over_model_mse")
    if ratio is not None:
        lines.append(f"whole-rollout position MSE: constant velocity / model = {ratio:.1f}x")
    return "\n".join(lines)


def run_checkpoint(run_dir: Path) -> Path:
    """A training run's best checkpoint, else its last."""
    checkpoints = run_dir / "checkpoints"
    return next((path for path in (checkpoints / "best.pt", checkpoints / "last.pt") if path.is_file()),
                checkpoints / "last.pt")


def checkpoint_run(checkpoint: Path) -> Path:
    """The run folder a checkpoint file lies in (RUN_DIR/checkpoints/FILE)."""
    return checkpoint.resolve().parent.parent


def run_data(run_dir: Path) -> Path:
    """The dataset folder a training run trained on, from its config.yaml."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise TrainingError(f"{config_file}: not found; pass --data DIR")
    return Path(yaml.safe_load(config_file.read_text())["data"])


class LoadedRun(NamedTuple):
    simulator: LearnedSimulator
    step: int
    checkpoint: Path
    metadata: dict
    data: Path


def add_run_arguments(parser: argparse.ArgumentParser, split: str) -> None:
    """The arguments `load_run` and a split take, for tools that read a trained model."""
    parser.add_argument("run", type=Path, help="a run folder (its best checkpoint, else its last) or a checkpoint file")
    parser.add_argument("--data", type=Path, help="dataset folder (default: the one the run trained on)")
    parser.add_argument("--split", default=split, choices=["train", "valid", "test"])


def load_run(path: Path, data: Path | None = None) -> LoadedRun:
    """The model of a run folder (its best checkpoint, else its last) or checkpoint file, with the
    metadata of `data` (default: the dataset the run trained on)."""
    if not path.exists():
        raise TrainingError(f"{path}: no such run folder or checkpoint")
    run_dir, checkpoint = (path, run_checkpoint(path)) if path.is_dir() else (checkpoint_run(path), path)
    data = data or run_data(run_dir)
    metadata = read_metadata(data)
    simulator, saved = simulator_from_checkpoint(checkpoint, metadata)
    return LoadedRun(simulator.eval(), saved["step"], checkpoint, metadata, data)


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
        checkpoint = args.checkpoint or run_checkpoint(run_dir)
        data = args.data or run_data(run_dir)
        for name, value in (("--trajectories", args.trajectories), ("--steps", args.steps), ("--batch-size", args.batch_size)):
            if value is not None and value < 1:
                raise TrainingError(f"{name} must be at least 1, got {value}")
        metrics = evaluate(run_dir, checkpoint, data, args.split, args.trajectories, args.steps, args.device,
                           args.batch_size)
    except (TrainingError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(summary(metrics))
    print(f"wrote {run_dir / 'rollouts' / (args.split + '.h5')} and {run_dir / 'rollouts' / 'metrics.json'}")


if __name__ == "__main__":
    main()
