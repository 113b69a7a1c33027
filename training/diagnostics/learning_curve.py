"""The scorecard of a run's kept checkpoints (`keep_every`): does longer training help?

python -m training.diagnostics.learning_curve RUN_DIR [--data DIR] [--split test]
                                              [--steps 1000,10000,...] [--trajectories K]
  prints one markdown row per checkpoint (the model's scorecard rows, its selection score and
  the number of rows it loses to a baseline), then the baselines' rows; writes
  RUN_DIR/learning_curve_SPLIT.json.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from gnsim.atomic import write_json_atomic
from gnsim.checkpoint import CheckpointError, run_data, simulator_from_checkpoint
from gnsim.dataset import TrajectoryDataset, read_metadata
from gnsim.metrics import SCORECARD, losing_rows, selection_score
from gnsim.scorecard import aggregates, score, scorecard_item

COLUMNS = (*SCORECARD, "spacing_ratio_final")


def kept_checkpoints(run_dir: Path, steps: list[int] | None = None) -> dict[int, Path]:
    """step -> checkpoints/step_NNNNNNNN.pt, all of them or those of `steps`."""
    kept = {int(re.fullmatch(r"step_(\d+)\.pt", p.name)[1]): p
            for p in (run_dir / "checkpoints").glob("step_*.pt")}
    if steps is not None:
        missing = sorted(set(steps) - set(kept))
        if missing:
            raise CheckpointError(f"{run_dir}: no kept checkpoint of step {missing[0]} (keep_every)")
        kept = {step: kept[step] for step in steps}
    if not kept:
        raise CheckpointError(f"{run_dir / 'checkpoints'}: no step_*.pt; train with keep_every=N")
    return dict(sorted(kept.items()))


def learning_curve(run_dir: Path, data: Path, split: str = "test", steps: list[int] | None = None,
                   trajectories: int | None = None) -> dict:
    """{step: {method: aggregate scorecard}} for each kept checkpoint, on `split` of `data`."""
    metadata = read_metadata(data)
    checkpoints = kept_checkpoints(run_dir, steps)
    dataset = TrajectoryDataset(data, split)
    chosen = [dataset[k] for k in range(len(dataset) if trajectories is None else min(trajectories, len(dataset)))]
    curve = {}
    for step, path in checkpoints.items():
        simulator, _ = simulator_from_checkpoint(path, metadata)
        items = [scorecard_item(trajectory, simulator.config) for trajectory in chosen]  # with its material
        curve[step] = aggregates(score(simulator, items, metadata)[0])
        print(f"step {step}: scored", file=sys.stderr)
    return curve


def table(curve: dict) -> str:
    cell = lambda value: "-" if value is None else f"{value:.3g}"
    lines = ["| step | " + " | ".join(COLUMNS) + " | score | rows lost |", "|---" * (len(COLUMNS) + 3) + "|"]
    for step, methods in curve.items():
        model = methods["model"]
        lines.append(f"| {step} | " + " | ".join(cell(model.get(key)) for key in COLUMNS)
                     + f" | {selection_score(methods):.3g} | {len(losing_rows(methods))} |")
    for name, rows in next(iter(curve.values())).items():
        if name != "model":
            lines.append(f"| {name} | " + " | ".join(cell(rows.get(key)) for key in COLUMNS) + " | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.diagnostics.learning_curve",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a training run folder with kept checkpoints")
    parser.add_argument("--data", type=Path, help="dataset folder (default: the one the run trained on)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--steps", help="comma-separated steps (default: every kept checkpoint)")
    parser.add_argument("--trajectories", type=int, help="score the first K trajectories (default: all)")
    args = parser.parse_args(argv)
    try:
        steps = [int(step) for step in args.steps.split(",")] if args.steps else None
        data = args.data or run_data(args.run_dir)
        curve = learning_curve(args.run_dir, data, args.split, steps, args.trajectories)
    except ValueError as error:  # CheckpointError, DatasetError and a bad --steps
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    write_json_atomic(args.run_dir / f"learning_curve_{args.split}.json",
                      {"data": str(data), "split": args.split, "curve": {str(k): v for k, v in curve.items()}})
    print(table(curve))


if __name__ == "__main__":
    main()
