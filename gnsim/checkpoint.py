"""Checkpoints: what a training run saves, and a trained simulator loaded back from one.

A checkpoint holds the weights (with the normalisation statistics as buffers), the model config,
the optimiser and RNG state to resume exactly, and the metadata the model was trained with. It is
read with `weights_only=True`: loading a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import yaml

from gnsim.atomic import writing
from gnsim.dataset import read_metadata
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig
from gnsim.plain_yaml import load_yaml

# The training data's metadata a checkpoint keeps; resuming a run needs data that agrees on all.
METADATA_KEYS = (
    "dim",
    "bounds",
    "default_connectivity_radius",
    "vel_mean",
    "vel_std",
    "acc_mean",
    "acc_std",
    "dt",
    "gravity",
    "particle_type_names",
)
# What a trained model means physically: it rolls out on any dataset that agrees on these. The
# normalisation comes from the checkpoint, the bounds and walls from the dataset.
PHYSICS_KEYS = ("dim", "dt", "gravity", "particle_type_names")


# The paper takes 10; a shared-weights model of a million steps holds few weights, yet never
# finishes a frame.
MAX_MESSAGE_PASSING_STEPS = 1000


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit, as one line."""


def first_line(error: BaseException) -> str:
    """An exception's first line, or its type's name when it has no message."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def save_checkpoint(path: Path, simulator: LearnedSimulator, optimizer, config: dict,
                    metadata: dict, step: int, best: float,
                    average: LearnedSimulator | None = None) -> None:
    """Everything to resume exactly, written whole or not at all."""
    checkpoint = {
        "step": step,
        "best": best,
        "model": simulator.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": config,
        "model_config": simulator.config.as_dict(),
        "metadata": {key: metadata[key] for key in METADATA_KEYS if key in metadata},
        "rng": get_rng_state(),
    }
    if average is not None:
        checkpoint["average"] = average.state_dict()
    try:
        with writing(path) as file:
            torch.save(checkpoint, file)
    except (OSError, RuntimeError) as error:  # a full disk: torch's writer says "unexpected pos"
        raise CheckpointError(f"{path}: could not be written ({first_line(error)}); any previous one "
                              "is kept. Free some disk space and --resume") from None


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's contents; a missing or unreadable file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user mistake
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(error)})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path}: not a gnsim checkpoint (no model weights)")
    return checkpoint


def check_metadata(path: Path, saved: dict, metadata: dict, keys: tuple[str, ...]) -> None:
    """Each of `keys` that both the checkpoint and the dataset give must agree."""
    for key in keys:
        if key not in saved or key not in metadata:
            continue
        here, there = metadata[key], saved[key]
        same = here == there if isinstance(here, (str, dict)) or isinstance(there, (str, dict)) else (
            np.shape(here) == np.shape(there) and np.allclose(here, there))
        if not same:
            raise CheckpointError(f"{path}: the dataset's metadata differs from the checkpoint's: "
                                  f"{key}={here!r} here, {there!r} there")


def load_weights(path: Path, checkpoint: dict, simulator: LearnedSimulator, optimizer=None,
                 average: bool = False) -> None:
    """Copy a checkpoint's weights (its weight average when `average` and it kept one) into `simulator`."""
    saved_config = checkpoint.get("model_config", {})
    for key, value in saved_config.items():
        if key in ("hard_walls", "material_key") or not hasattr(simulator.config, key):  # no weight depends on it
            continue
        if value != getattr(simulator.config, key):
            raise CheckpointError(f"{path}: checkpoint holds a model of another shape: {key}="
                                  f"{value!r} there, {getattr(simulator.config, key)!r} here")
    state = dict(checkpoint["average"] if average and "average" in checkpoint else checkpoint["model"])
    state.pop("boundaries", None)  # checkpoints before the bounds came from the dataset kept them
    try:
        simulator.load_state_dict(state)
    except RuntimeError as error:
        detail = next((line.strip() for line in str(error).splitlines()
                       if "size mismatch" in line or "Missing" in line or "Unexpected" in line),
                      first_line(error))
        raise CheckpointError(f"{path}: checkpoint holds a model of another shape ({detail})") from None
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])


def check_model_config(path: Path, config: SimulatorConfig, metadata: dict, weights: dict) -> None:
    """Refuse, before building it, a model config that does not describe the weights the
    checkpoint holds: a config is a few numbers, and `latent_size=2**20` asks for terabytes.

    The model is counted on the meta device (no memory) with at most two message-passing steps,
    each further unshared step adding as many numbers as the second did.
    """
    steps = config.message_passing_steps
    if not isinstance(steps, int) or not 1 <= steps <= MAX_MESSAGE_PASSING_STEPS:
        raise CheckpointError(f"{path}: model_config 'message_passing_steps' must be an integer from 1 "
                              f"to {MAX_MESSAGE_PASSING_STEPS}, got {steps!r}")
    counts = [_state_size(path, replace(config, message_passing_steps=k), metadata)
              for k in range(1, min(steps, 2) + 1)]
    expected = counts[0] + (0 if config.shared_weights else (steps - 1) * (counts[-1] - counts[0]))
    held = sum(value.numel() for key, value in weights.items()
               if isinstance(value, torch.Tensor) and key != "boundaries")  # see load_weights
    if expected != held:
        sizes = ", ".join(f"{key}={getattr(config, key)!r}" for key in (
            "latent_size", "mlp_hidden_size", "mlp_num_hidden_layers", "message_passing_steps", "input_frames"))
        raise CheckpointError(f"{path}: model_config ({sizes}) describes a model of {expected:,} numbers, "
                              f"but the checkpoint holds {held:,}")


def _state_size(path: Path, config: SimulatorConfig, metadata: dict) -> int:
    """Numbers in the state dict of the model `config` describes, counted without allocating."""
    try:
        with torch.device("meta"):
            model = LearnedSimulator(config, metadata)
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{path}: cannot build its model ({first_line(error)})") from None
    return sum(value.numel() for value in model.state_dict().values())


def simulator_from_checkpoint(path: str | os.PathLike, metadata: dict) -> tuple[LearnedSimulator, dict]:
    """The trained simulator of a checkpoint, in eval mode, for a dataset of the same physics.

    Its own model config and normalisation, the dataset's bounds; its weight average when it
    kept one. A dataset that differs in dim, dt, gravity, particle types or (when the model takes
    the dataset's) connectivity radius is refused.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    config = SimulatorConfig.from_dict(checkpoint.get("model_config", {}))
    saved = checkpoint.get("metadata", {})
    keys = PHYSICS_KEYS + (() if config.connectivity_radius else ("default_connectivity_radius",))
    check_metadata(path, saved, metadata, keys)
    model_metadata = {**metadata, **{key: saved[key] for key in saved if key not in ("bounds",)}}
    check_model_config(path, config, model_metadata, checkpoint["model"])
    try:
        simulator = LearnedSimulator(config, model_metadata)
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot build its model ({first_line(error)})") from None
    load_weights(path, checkpoint, simulator, average=True)
    return simulator.eval(), checkpoint


def slim_checkpoint(checkpoint: dict) -> dict:
    """What a shipped model needs to roll out: the weights (the weight average when the run kept
    one), its configs, metadata and step; no optimiser or RNG state."""
    weights = checkpoint.get("average", checkpoint["model"])
    return {"step": checkpoint["step"], "model": weights,
            **{key: checkpoint[key] for key in ("config", "model_config", "metadata") if key in checkpoint}}


# ---- run folders ---------------------------------------------------------------------------------

STATE = "state.pt"  # a model folder's copy of its run's last checkpoint, to continue the run elsewhere
RUN_FILES = ("config.yaml", "command.txt", "metrics.jsonl")  # what a model folder keeps of its run


def start_from_model(model_dir: Path, run_dir: Path) -> int:
    """Lay a shipped model's run state into `run_dir` to resume it there; returns the state's step.

    A run folder already further on (its last.pt at a later or equal step) is kept as it is."""
    state = model_dir / STATE
    if not state.is_file() or not (model_dir / "config.yaml").is_file():
        raise CheckpointError(f"{model_dir}: holds no {STATE} and config.yaml to continue from "
                              "(ship the run with training.ship)")
    step = int(read_checkpoint(state)["step"])
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file() and int(read_checkpoint(last)["step"]) >= step:
        return int(read_checkpoint(last)["step"])
    last.parent.mkdir(parents=True, exist_ok=True)
    for source, target in [(state, last)] + [(model_dir / name, run_dir / name) for name in RUN_FILES]:
        if source.is_file():
            with writing(target) as file, source.open("rb") as original:
                shutil.copyfileobj(original, file)
    return step


def run_checkpoint(run_dir: Path) -> Path:
    """A run folder's best checkpoint, else its last; a shipped model folder's model.pt."""
    candidates = (run_dir / "model.pt", run_dir / "checkpoints" / "best.pt", run_dir / "checkpoints" / "last.pt")
    return next((path for path in candidates if path.is_file()), candidates[-1])


def checkpoint_run(checkpoint: Path) -> Path:
    """The run folder a checkpoint file lies in (RUN_DIR/checkpoints/FILE, or a model folder)."""
    folder = checkpoint.resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def run_data(run_dir: Path) -> Path:
    """The dataset folder a run trained on, from its config.yaml."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise CheckpointError(f"{config_file}: not found; pass --data DIR")
    try:
        config = load_yaml(config_file.read_text(), "configs") or {}
    except yaml.YAMLError as error:
        raise CheckpointError(f"{config_file}: not valid YAML ({first_line(error)})") from None
    data = config.get("data") if isinstance(config, dict) else None
    if not data:
        raise CheckpointError(f"{config_file}: names no dataset; pass --data DIR")
    return Path(data)


class LoadedRun(NamedTuple):
    simulator: LearnedSimulator
    step: int
    checkpoint: Path
    metadata: dict
    data: Path


def load_run(path: Path, data: Path | None = None) -> LoadedRun:
    """The model of a run or model folder (its best checkpoint, else its last) or a checkpoint
    file, for the dataset `data` (default: the one it trained on)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint")
    run_dir, checkpoint = (path, run_checkpoint(path)) if path.is_dir() else (checkpoint_run(path), path)
    data = Path(data) if data else run_data(run_dir)
    metadata = read_metadata(data)
    simulator, saved = simulator_from_checkpoint(checkpoint, metadata)
    return LoadedRun(simulator, saved["step"], checkpoint, metadata, data)


# ---- random state --------------------------------------------------------------------------------


def get_rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    numpy_state = np.random.get_state()
    state["numpy"] = {"key": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    np.random.set_state(("MT19937", state["numpy"]["key"].numpy().astype(np.uint32), state["numpy"]["pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
