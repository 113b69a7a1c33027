"""Ship a trained model: `python -m training.ship RUN_DIR models/NAME [--checkpoint FILE]`.

Writes models/NAME/model.pt (weights and configs only, loadable with `weights_only=True`),
config.yaml (the run's config and dataset), command.txt (the command that trained it), and what
continuing the run on another machine needs: state.pt (the run's last checkpoint: weights,
optimiser and RNG state, step) and metrics.jsonl (its learning curve so far); `python -m
training.train --resume --from models/NAME --out RUN --data DATA` continues it exactly. The
scorecard and GIF come from `training.rollout models/NAME` and `viz.render`, run on the result.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from gnsim.atomic import replacing_folder
from gnsim.checkpoint import (
    RUN_FILES,
    STATE,
    CheckpointError,
    read_checkpoint,
    run_checkpoint,
    slim_checkpoint,
)


def ship(run_dir: Path, out: Path, checkpoint: Path | None = None) -> Path:
    """Copy a run's checkpoint (default: its best), slimmed, with its config and command into `out`."""
    checkpoint = checkpoint or run_checkpoint(run_dir)
    slim = slim_checkpoint(read_checkpoint(checkpoint))
    for name in ("config.yaml", "command.txt"):
        if not (run_dir / name).is_file():
            raise CheckpointError(f"{run_dir / name}: not found; is {run_dir} a training run folder?")
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: exists and is not a folder; choose another")
    if out.exists() and any(out.iterdir()) and not (out / "model.pt").is_file():  # replaced whole below
        raise CheckpointError(f"{out}: exists and is not a model folder (no model.pt); choose another")
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing_folder(out) as staging:  # a new model: no file of an older one (its scorecard, GIF) stays
        torch.save(slim, staging / "model.pt")
        copies = {STATE: run_dir / "checkpoints" / "last.pt", **{name: run_dir / name for name in RUN_FILES}}
        for name, source in copies.items():
            if source.is_file():
                shutil.copyfile(source, staging / name)
    return out / "model.pt"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the training run folder")
    parser.add_argument("out", type=Path, help="the model folder to write, e.g. models/water-2d")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint of the run (default: its best.pt)")
    args = parser.parse_args(argv)
    try:
        path = ship(args.run_dir, args.out, args.checkpoint)
    except (CheckpointError, OSError) as error:  # OSError: a folder it may not write
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {path} (step {torch.load(path, weights_only=True)['step']})")


if __name__ == "__main__":
    main()
