"""LagrangeBench datasets (Toshev et al. 2023): our HDF5 group layout, with their own conventions.

Their `metadata.json` counts frames per split (`sequence_length_train`, `sequence_length_test`,
`num_trajs_*`) where ours counts steps (`sequence_length` = frames - 1) and trajectories
(`num_trajectories_*`); ours are recomputed by the writer, theirs kept under `source`. Their
particle ids (lagrangebench/utils.py NodeType) become GNS ids; the box may be periodic per axis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from gnsim.convert.source import STATISTICS, Source, TrajectoryRecord, available_splits
from gnsim.dataset import DatasetError, checked_entry, read_json

SUFFIX = ".h5"
# LagrangeBench NodeType -> GNS particle type: fluid -> water, both walls -> boundary (kinematic:
# positions prescribed, moving or not), rigid body -> rigid.
PARTICLE_TYPE_MAP = {0: 5, 1: 3, 2: 3, 3: 0}
_NAMES = "0 fluid, 1 solid wall, 2 moving wall, 3 rigid body"
# Their per-split counts, superseded by the writer's sequence_length_{split} and
# num_trajectories_{split}.
_RECOUNTED = ("sequence_length_train", "sequence_length_test", "num_trajs_train", "num_trajs_test")


def map_particle_types(where: str, particle_type: np.ndarray) -> np.ndarray:
    """LagrangeBench ids -> GNS ids; an unknown id is an error naming where it was found."""
    unknown = sorted(set(np.unique(particle_type).tolist()) - set(PARTICLE_TYPE_MAP))
    if unknown:
        raise DatasetError(
            f"{where}: LagrangeBench particle type {unknown[0]} is unknown (known: {_NAMES})"
        )
    lookup = np.zeros(max(PARTICLE_TYPE_MAP) + 1, dtype=np.int64)
    lookup[list(PARTICLE_TYPE_MAP)] = list(PARTICLE_TYPE_MAP.values())
    return lookup[particle_type]


def read(folder: Path) -> Source:
    """A LagrangeBench dataset as a stream of checked trajectories with GNS particle ids."""
    metadata = read_json(
        folder / "metadata.json", ("dim", "dt", "bounds", "default_connectivity_radius"), "a LagrangeBench dataset"
    )
    splits = available_splits(folder, SUFFIX)
    dim, most = metadata["dim"], metadata.get("num_particles_max")

    def trajectories(split: str) -> tuple[int, Iterator[TrajectoryRecord]]:
        with h5py.File(splits[split], "r") as file:
            count = len(file)
        return count, stream(splits[split])

    def stream(path: Path) -> Iterator[TrajectoryRecord]:
        with h5py.File(path, "r") as file:
            for name in sorted(file):
                where = f"{path} record {name}"
                group = checked_entry(where, file, name, h5py.Group)
                if "position" not in group or "particle_type" not in group:
                    raise DatasetError(
                        f"{where}: expected a group with 'position' and 'particle_type'"
                    )
                fields = {key: checked_entry(where, group, key, h5py.Dataset)[()] for key in group}
                position, particle_type = fields.pop("position"), fields.pop("particle_type")
                if position.ndim != 3 or position.shape[2] != dim:
                    raise DatasetError(
                        f"{where}: 'position' has shape {position.shape}, "
                        f"the metadata says [T, N, {dim}]"
                    )
                if most is not None and position.shape[1] > most:
                    raise DatasetError(
                        f"{where}: 'position' has {position.shape[1]} particles, the metadata's "
                        f"num_particles_max is {most}"
                    )
                yield TrajectoryRecord(position, map_particle_types(where, particle_type), fields)

    kept = {key: value for key, value in metadata.items() if key not in STATISTICS + _RECOUNTED}
    return Source.from_metadata(
        "lagrangebench", folder, splits, metadata, kept, trajectories,
        provenance=lambda: {
            "format": "lagrangebench",
            "metadata": metadata,
            "particle_type_map": {str(k): v for k, v in PARTICLE_TYPE_MAP.items()},
        },
    )
