"""geoelements' taichi_mpm output: `trajectoryK.npz` beside the input `inputs_2d_K.json` that made it.

Each npz is gns's layout (one key `trajectoryK`: positions [T, N, D], particle types [N]); each
input file gives the scene: `sim_space` (the box), `mpm_dt` (the frame interval), `gravity`, and
the material, whose `friction_angle` (degrees) becomes the per-trajectory material parameter
`material` = [tan(friction angle)], the Drucker-Prager friction coefficient (O(1), as the
model's other inputs are). The folder has no splits of its own; ours are drawn deterministically
per friction angle: of the trajectories sharing one, sorted by K, the last is `test`, the one
before it `valid`, and the rest `train` (40 trajectories at 5 angles: 30 / 5 / 5).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gnsim.convert import npz
from gnsim.convert.source import Source, TrajectoryRecord
from gnsim.dataset import DatasetError, read_json

PATTERN = re.compile(r"trajectory(\d+)\.npz")
MATERIAL = "material"
# Particles per connectivity radius: 0.025 m holds ~30 neighbours at taichi_mpm's 2 particles per
# cell of a 64-cell metre (1/128 m apart), as the GNS's ~10-20 at 2.5-5 spacings.
CONNECTIVITY_RADIUS = 0.025
# What every trajectory's input must agree on: they form one dataset.
SHARED = ("sim_space", "mpm_dt", "gravity")


def detect(folder: Path) -> bool:
    """Whether `folder` holds taichi_mpm trajectories with their input files."""
    return any(_inputs_path(path).is_file() for path in folder.glob("trajectory*.npz"))


def _inputs_path(trajectory: Path) -> Path:
    match = PATTERN.fullmatch(trajectory.name)
    return trajectory.with_name(f"inputs_2d_{match.group(1)}.json") if match else trajectory


def split_of(friction_angles: dict[int, float]) -> dict[int, str]:
    """Trajectory index -> split: per friction angle, the last by index tests, the one before validates."""
    splits = {}
    for angle in sorted(set(friction_angles.values())):
        indices = sorted(k for k, a in friction_angles.items() if a == angle)
        for position, k in enumerate(reversed(indices)):
            splits[k] = "test" if position == 0 else "valid" if position == 1 else "train"
    return splits


def read(folder: Path) -> Source:
    """A folder of taichi_mpm trajectories as a stream of checked trajectories with their material."""
    files = {int(m.group(1)): folder / m.group(0)
             for m in (PATTERN.fullmatch(p.name) for p in folder.iterdir()) if m}
    if not files:
        raise DatasetError(f"{folder}: no trajectoryK.npz files")
    inputs = {}
    for k, path in sorted(files.items()):
        inputs[k] = read_json(_inputs_path(path), ("friction_angle", *SHARED), "a taichi_mpm trajectory")
        angle = inputs[k]["friction_angle"]
        if not isinstance(angle, int | float) or not 0 < angle < 90:
            raise DatasetError(f"{_inputs_path(path)}: friction_angle must be in (0, 90) degrees, got {angle!r}")
        for key in SHARED:
            if inputs[k][key] != inputs[min(files)][key]:
                raise DatasetError(f"{_inputs_path(path)}: {key} {inputs[k][key]} differs from "
                                   f"{_inputs_path(files[min(files)])}'s {inputs[min(files)][key]}")
    first = inputs[min(files)]
    bounds, dim = first["sim_space"], len(first["sim_space"])
    if len(first["gravity"]) != dim:
        raise DatasetError(f"{_inputs_path(files[min(files)])}: gravity has {len(first['gravity'])} "
                           f"entries for a {dim}D sim_space")
    assignment = split_of({k: inputs[k]["friction_angle"] for k in files})
    splits = {split: folder for split in ("train", "valid", "test") if split in assignment.values()}
    if "train" not in splits:
        raise DatasetError(f"{folder}: too few trajectories for a training split")

    def trajectories(split: str) -> tuple[int, Iterator[TrajectoryRecord]]:
        chosen = [k for k in sorted(files) if assignment[k] == split]
        return len(chosen), (_trajectory(files[k], inputs[k], dim) for k in chosen)

    kept = {"gravity": first["gravity"], "material_names": ["tan(friction_angle)"],
            "split_rule": "per friction angle, by trajectory index: last test, next-to-last valid, rest train"}
    return Source("taichi_mpm", folder, splits, dim, float(first["mpm_dt"]), bounds,
                  CONNECTIVITY_RADIUS, kept, trajectories,
                  provenance=lambda: {"format": "taichi_mpm",
                                      "splits": {str(k): assignment[k] for k in sorted(files)}})


def read_trajectory(path: Path, dim: int | None = None) -> TrajectoryRecord:
    """The one trajectory of a taichi_mpm npz, read by gns's restricted unpickler (no pickle runs),
    its positions checked to be `dim`-D (by default, whatever their last axis says)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    _, names, count, items = npz.read_items(path)
    if count != 1:
        raise DatasetError(f"{path}: holds {count} trajectories, expected 1")
    item = next(items)
    if dim is None:
        shape = np.shape(item[0]) if hasattr(item, "__len__") and len(item) else ()
        dim = shape[-1] if shape else 0  # 0: decode_trajectory refuses the item in its own words
    return npz.decode_trajectory(f"{path} ({names[0] if names else npz.LAYOUT_KEY!r})", item, dim)


def _trajectory(path: Path, inputs: dict, dim: int) -> TrajectoryRecord:
    record = read_trajectory(path, dim)
    record.extras = {MATERIAL: np.array([math.tan(math.radians(inputs["friction_angle"]))], np.float32)}
    return record
