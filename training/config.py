"""Training configs: flat key -> value dicts, from a preset or YAML file plus `key=value` overrides."""

from __future__ import annotations

import difflib
import math
from dataclasses import fields
from pathlib import Path

import yaml

from gnsim.learned_simulator import SimulatorConfig
from gnsim.plain_yaml import load_yaml
from gnsim.strategies import PushforwardSchedule, relative_noise_std

CONFIG_DIR = Path(__file__).parent / "configs"


class TrainingError(Exception):
    """A user mistake (bad config, data or checkpoint), reported as one line without a traceback."""


# Every key a config may set, with its default. The model keys are SimulatorConfig's fields.
DEFAULTS: dict = {
    **SimulatorConfig().as_dict(),
    # optimisation: Adam, lr = (lr0 - lr_final) * decay^(step / decay_steps) + lr_final
    "batch_size": 2,  # global: split across DDP ranks, see docs/training.md
    # Windows per batch chosen to hold about this many particles (the paper: 2 of 1-2.5k, so
    # 2-5k a step); replaces batch_size, which config.yaml then records. None: batch_size as set.
    "batch_particles": None,
    "steps": 20_000_000,
    "learning_rate": 1e-4,
    "learning_rate_final": 1e-6,
    "learning_rate_decay": 0.1,
    "learning_rate_decay_steps": 5_000_000,
    "grad_clip": 0.0,  # max gradient norm; 0 disables
    # Validate, keep best.pt and roll out with an exponential moving average of the weights,
    # w_avg <- decay w_avg + (1 - decay) w after every step; 0 disables.
    "ema_decay": 0.0,
    # False: the paper's target, which keeps the input noise's position offset (only velocity
    # noise is undone). True: the target is the true next position (see gnsim/strategies.py).
    "correct_position_noise": False,
    # The fraction of the last input velocity's noise the target undoes (1: all, the paper); the
    # rest stays in the target, so the model learns a gentler correction (see gnsim/strategies.py).
    "noise_velocity_correction": 1.0,
    # The noise std as a multiple of the data's acceleration std (mean over axes), so that one
    # preset means the same on water, sand and SPH data; replaces noise_std, which the run's
    # config.yaml then records. The paper's 6.7e-4 is ~8.7x WaterDrop's. None: noise_std as set.
    "noise_std_relative": None,
    # Pushforward (gnsim/strategies.py): unroll k steps without gradient before the trained one;
    # unroll k is available from pushforward_unlock_steps[k], drawn by pushforward_weights
    # (LagrangeBench's schedule). Off in the paper.
    "pushforward": False,
    "pushforward_unlock_steps": [0, 20_000, 300_000, 400_000],
    "pushforward_weights": [18, 2, 1, 1],
    "seed": 0,
    "init_from": None,  # checkpoint whose weights start a new run (fine-tuning)
    # data and compute
    "num_workers": 2,
    "threads": None,  # torch CPU threads of the training process; None: torch's default
    "device": "auto",  # auto: CUDA when available
    "amp": "auto",  # auto: bf16 autocast on CUDA and on CPUs with native bf16, else float32; or "bf16", "off"
    "compile": False,
    # reporting and checkpoints
    "log_every": 100,
    "validate_every": 10_000,
    "rollout_trajectories": 1,
    "rollout_steps": 100,
    "checkpoint_every": 1_000,
    "keep_every": 0,  # also keep checkpoints/step_NNNNNNNN.pt every this many steps (learning curves); 0: none
    "tensorboard": True,
}
MODEL_KEYS = tuple(f.name for f in fields(SimulatorConfig))
# Allowed values: (lowest, whether the lowest itself is allowed, highest or None) per number key.
POSITIVE, AT_LEAST_ONE, NON_NEGATIVE = (0, False, None), (1, True, None), (0, True, None)
RANGES = {
    **dict.fromkeys(("batch_size", "latent_size", "mlp_hidden_size", "message_passing_steps",
                     "learning_rate_decay_steps", "log_every", "validate_every", "checkpoint_every",
                     "rollout_steps", "threads", "num_particle_types", "batch_particles"), AT_LEAST_ONE),
    **dict.fromkeys(("learning_rate", "connectivity_radius", "wall_feature_range"), POSITIVE),
    **dict.fromkeys(("steps", "learning_rate_final", "noise_std", "grad_clip", "num_workers", "seed",
                     "keep_every", "rollout_trajectories", "mlp_num_hidden_layers",
                     "particle_type_embedding_size", "material_features", "noise_std_relative"),
                    NON_NEGATIVE),
    "input_frames": (2, True, None),  # at least one velocity
    "learning_rate_decay": (0, False, 1.0),
    "ema_decay": (0, True, 0.999999),
    "noise_velocity_correction": (0, True, None),
}
CHOICES = {"aggregation": ("sum", "mean", "max"), "amp": ("auto", "bf16", "off")}
# Keys whose default is None (unset) but whose value, when set, is a number of this type.
OPTIONAL_NUMBERS = {"connectivity_radius": float, "wall_feature_range": float, "threads": int,
                    "noise_std_relative": float, "batch_particles": int}


def check_keys(values: dict, where: str, extra_keys: tuple[str, ...] = ()) -> None:
    """Reject unknown keys, and coerce values in place to the type of their default."""
    for key, value in values.items():
        if key in extra_keys:
            continue
        if key not in DEFAULTS:
            close = difflib.get_close_matches(key, DEFAULTS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TrainingError(f"unknown config key {key!r} in {where}{hint}")
        values[key] = _coerce(key, value, where)
        _check_value(key, values[key], where)


def _check_value(key: str, value, where: str) -> None:
    """A number within its key's range, a string among its key's choices."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every comparison below
        raise TrainingError(f"config key {key!r} in {where} must be a finite number, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise TrainingError(f"config key {key!r} in {where} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    if key in RANGES:
        low, inclusive, high = RANGES[key]
        if value < low or (value == low and not inclusive) or (high is not None and value > high):
            bound = f"{'at least' if inclusive else 'above'} {low}" + (f" and at most {high}" if high is not None else "")
            raise TrainingError(f"config key {key!r} in {where} must be {bound}, got {value!r}")


def _coerce(key: str, value, where: str):
    default = DEFAULTS[key]
    kind = OPTIONAL_NUMBERS.get(key, type(default))
    if kind is str and value is not None and not isinstance(value, str):
        raise TrainingError(f"config key {key!r} in {where} must be a string, got {value!r}")
    if kind is list and not (isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise TrainingError(f"config key {key!r} in {where} must be a list of numbers, got {value!r}")
    if value is None or kind in (type(None), str, list) or (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        return value
    if kind is bool:
        raise TrainingError(f"config key {key!r} in {where} must be true or false, got {value!r}")
    try:  # YAML reads `3e-3` (no dot) as a string; ints are fine where floats are expected
        number = float(value)
        if kind is int and number != int(number):
            raise ValueError
        return kind(number) if kind is int else number
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise TrainingError(
            f"config key {key!r} in {where} must be {'an integer' if kind is int else 'a number'}, got {value!r}"
        ) from None


def parse_overrides(overrides: list[str]) -> dict:
    """`key=value` strings -> dict, values parsed as YAML scalars (`1e-4`, `true`, `null`)."""
    values = {}
    for item in overrides:
        key, separator, text = item.partition("=")
        if not separator or not key:
            raise TrainingError(f"override {item!r} is not of the form key=value")
        if isinstance(DEFAULTS.get(key), str):  # as typed: YAML would read `amp=off` as False
            values[key] = text
            continue
        try:
            values[key] = load_yaml(text, "overrides")
        except yaml.YAMLError:
            raise TrainingError(f"override {item!r}: value is not valid YAML") from None
    check_keys(values, "the command line")
    return values


def read_yaml(path: Path, extra_keys: tuple[str, ...] = ()) -> dict:
    try:
        values = load_yaml(path.read_text(), "configs") or {}
    except yaml.YAMLError as error:
        raise TrainingError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise TrainingError(f"{path}: a config must be a mapping of key: value")
    check_keys(values, str(path), extra_keys)
    return values


def load_config(name_or_path: str, overrides: list[str] | None = None) -> dict:
    """DEFAULTS, updated by the preset `training/configs/NAME.yaml` or a YAML path, then the overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        presets = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
        raise TrainingError(
            f"config {name_or_path!r} not found (presets: {presets}, or a path to a .yaml)"
        )
    return layered(DEFAULTS, read_yaml(path), parse_overrides(overrides or []))


# An absolute value set in a later layer replaces the data-relative one of an earlier layer.
RELATIVE_KEYS = {"noise_std": "noise_std_relative", "batch_size": "batch_particles"}


def layered(*layers: dict) -> dict:
    """Configs merged in order: later keys win, and `noise_std=1e-3` or `batch_size=4` given
    over a preset that sets `noise_std_relative` or `batch_particles` means what it says."""
    config = dict(layers[0])  # the base (DEFAULTS) sets both; the layers over it decide
    for layer in layers[1:]:
        config |= layer
        for absolute, relative in RELATIVE_KEYS.items():
            if absolute in layer and relative not in layer:
                config[relative] = None
    return config


def learning_rate(config: dict, step: int) -> float:
    """Exponential decay from `learning_rate` towards `learning_rate_final` (learning_to_simulate)."""
    initial, final = config["learning_rate"], config["learning_rate_final"]
    decay = config["learning_rate_decay"] ** (step / config["learning_rate_decay_steps"])
    return (initial - final) * decay + final


def derived_from_data(config: dict, metadata: dict, mean_particles: float, world_size: int = 1) -> dict:
    """The absolute values that `noise_std_relative` and `batch_particles` stand for on this data."""
    derived = {}
    if config["noise_std_relative"] is not None:
        derived["noise_std"] = relative_noise_std(config["noise_std_relative"], metadata)
    if config["batch_particles"] is not None:
        per_rank = max(1, round(config["batch_particles"] / mean_particles / world_size))
        derived["batch_size"] = per_rank * world_size
    return derived


def pushforward_schedule(config: dict) -> PushforwardSchedule | None:
    """The run's pushforward schedule, or None when pushforward is off."""
    if not config["pushforward"]:
        return None
    try:
        return PushforwardSchedule(config["pushforward_unlock_steps"], config["pushforward_weights"])
    except ValueError as error:
        raise TrainingError(str(error)) from None
