"""What each reader of a foreign format hands the converter: metadata and trajectories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gnsim.dataset import SPLITS, DatasetError

# Statistics our DatasetWriter recomputes from the training split (DeepMind's convention).
STATISTICS = ("vel_mean", "vel_std", "acc_mean", "acc_std")


@dataclass
class TrajectoryRecord:
    position: np.ndarray  # float32 [T, N, D]
    particle_type: np.ndarray  # int64 [N], GNS ids
    extras: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Source:
    """A foreign dataset: the writer's arguments, and per split a file and its trajectories."""

    format: str
    folder: Path
    splits: dict[str, Path]  # split -> file, in SPLITS order, always with "train"
    dim: int
    dt: float
    bounds: list[list[float]]
    connectivity_radius: float
    metadata: dict  # further keys kept in our metadata.json
    trajectories: Callable[
        [str], tuple[int, Iterator[TrajectoryRecord]]
    ]  # split -> (count, stream)
    provenance: Callable[[], dict]  # what an export needs to give the data back as it came

    @classmethod
    def from_metadata(cls, format: str, folder: Path, splits: dict[str, Path], metadata: dict,
                      kept: dict, trajectories: Callable, provenance: Callable[[], dict]) -> Source:
        """A source whose writer arguments are the DeepMind keys of its `metadata`."""
        return cls(format, folder, splits, int(metadata["dim"]), metadata["dt"], metadata["bounds"],
                   metadata["default_connectivity_radius"], kept, trajectories, provenance)


def available_splits(folder: Path, suffix: str) -> dict[str, Path]:
    """The split files present, in train/valid/test order; a missing training split is an error."""
    splits = {
        split: folder / f"{split}{suffix}"
        for split in SPLITS
        if (folder / f"{split}{suffix}").is_file()
    }
    if "train" not in splits:
        found = ", ".join(path.name for path in splits.values()) or "none"
        raise DatasetError(f"{folder / f'train{suffix}'}: missing split 'train' (found: {found})")
    return splits
