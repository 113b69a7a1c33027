"""geoelements/gns datasets: `metadata.json` plus `{train,valid,test}.npz`.

gns (gns/data_loader.py `load_npz_data`) reads either layout of a pickled npz:
- "gns_data": one object array, one entry per trajectory (the layout numpy >= 1.24 needs);
- one key per trajectory (e.g. `simulation_trajectory_0`), each an object array.
Each trajectory is (positions [T, N, D], particle_type [N] or one int, material_property), the
last optional: a scalar or [N] or [N, k] per-particle property (gns docs/gns_data.md) that we
keep as the extra `material_property`. Its metadata.json is flat or split into "train" and
"rollout" sections (gns/reading_utils.py); we take "train".

Their trajectories are pickled object arrays. They are read by a restricted unpickler that builds
numpy arrays, dtypes and scalars (in tuples and lists) and nothing else: a crafted file that
names any other callable is refused, so converting a downloaded dataset cannot run its code.
"""

from __future__ import annotations

import math
import pickle
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from gnsim.atomic import write_json_atomic
from gnsim.convert.source import STATISTICS, Source, TrajectoryRecord, available_splits
from gnsim.dataset import (
    SPLITS,
    DatasetError,
    read_json,
    read_metadata,
    split_file,
)
from gnsim.limits import too_big

SUFFIX = ".npz"
LAYOUT_KEY = "gns_data"
MATERIAL = "material_property"


def _train_section(path: Path, metadata: dict) -> dict:
    section = metadata["train"] if isinstance(metadata.get("train"), dict) else metadata
    for key in ("dim", "bounds", "default_connectivity_radius", "dt"):
        if key not in section:
            raise DatasetError(f"{path}: missing key {key!r}")
    return section


# What a pickled gns trajectory is made of: numpy's array, dtype and scalar reconstructors.
_ALLOWED = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")} | {
    ("numpy", "ndarray"), ("numpy", "dtype")}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and scalars; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of a gns dataset")
        return super().find_class(module, name)


def _read_member(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    """One `.npy` member of an npz: plain arrays as numpy reads them, object arrays restricted.

    Streamed, and sized before reading: a megabyte of zip can inflate to gigabytes (its declared
    size bounds what zipfile inflates), and a plain array's header can declare any shape.
    """
    _check_size(member, archive.getinfo(member).file_size)
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        if not dtype.hasobject:
            _check_size(f"{member} of shape {shape}", math.prod(shape) * dtype.itemsize)
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False)
        array = _ArrayUnpickler(stream).load()
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError(f"member {member!r} does not hold the [{shape}] array its header declares")
    return array


def _check_size(member: str, size: int) -> None:
    reason = too_big(size)
    if reason:
        raise ValueError(f"member {member} {reason}")


def read_items(path: Path) -> tuple[str, list[str] | None, int, Iterator]:
    """(layout, trajectory names or None, count, iterator over trajectories) of one npz file."""
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError,
                  AttributeError, TypeError, IndexError, KeyError)
    try:
        archive = zipfile.ZipFile(path)
        names = [member[: -len(".npy")] for member in archive.namelist() if member.endswith(".npy")]
        if LAYOUT_KEY in names:
            with archive:
                items = _read_member(archive, LAYOUT_KEY + ".npy")
            return LAYOUT_KEY, None, len(items), iter(items)
    except unreadable as error:
        raise DatasetError(f"{path}: not a readable npz file ({error})") from None

    def items() -> Iterator:
        with archive:
            for index, name in enumerate(names):
                try:
                    yield _read_member(archive, name + ".npy")
                except unreadable as error:
                    raise DatasetError(f"{path} record {index} ({name!r}): unreadable ({error})") from None

    return "keys", names, len(names), items()


def decode_trajectory(where: str, item, dim: int) -> TrajectoryRecord:
    """One gns trajectory tuple, checked, with its particle type broadcast to [N]."""
    if not hasattr(item, "__len__") or len(item) not in (2, 3):
        raise DatasetError(
            f"{where}: expected (positions, particle_type[, material_property]), "
            f"got {type(item).__name__}"
        )
    position = np.asarray(item[0])
    if (
        position.ndim != 3
        or position.shape[2] != dim
        or not np.issubdtype(position.dtype, np.floating)
    ):
        raise DatasetError(
            f"{where}: positions have shape {position.shape} ({position.dtype}), "
            f"the metadata says float [T, N, {dim}]"
        )
    particle_type = np.asarray(item[1])  # one id per particle, or one for all (gns's np.full)
    one_per_particle = particle_type.shape in ((), (position.shape[1],))
    if not one_per_particle or not np.issubdtype(particle_type.dtype, np.integer):
        raise DatasetError(
            f"{where}: particle_type has shape {particle_type.shape} ({particle_type.dtype}), "
            f"expected one int or [{position.shape[1]}] ints"
        )
    extras = {MATERIAL: np.asarray(item[2])} if len(item) == 3 else {}
    return TrajectoryRecord(
        position.astype(np.float32),
        np.broadcast_to(particle_type, position.shape[1:2]).astype(np.int64),
        extras,
    )


def read(folder: Path) -> Source:
    """A gns npz dataset as a stream of checked trajectories."""
    original = read_json(folder / "metadata.json", needed_by="a gns dataset")
    metadata = _train_section(folder / "metadata.json", original)
    splits = available_splits(folder, SUFFIX)
    form: dict = {"names": {}}

    def trajectories(split: str) -> tuple[int, Iterator[TrajectoryRecord]]:
        path = splits[split]
        layout, names, count, items = read_items(path)
        form["layout"] = layout
        if names is not None:
            form["names"][split] = names
        return count, _decode_all(path, names, items)

    def _decode_all(
        path: Path, names: list[str] | None, items: Iterator
    ) -> Iterator[TrajectoryRecord]:
        for index, item in enumerate(items):
            where = f"{path} record {index}" + (f" ({names[index]!r})" if names else "")
            trajectory = decode_trajectory(where, item, metadata["dim"])
            if "position_dtype" not in form:
                # Kept so that an export gives the arrays back in the form they came in.
                form["position_dtype"] = str(np.asarray(item[0]).dtype)
                form["particle_type_dtype"] = str(np.asarray(item[1]).dtype)
                form["scalar_particle_type"] = np.ndim(item[1]) == 0
                form["compressed"] = _compressed(path)
                if form["position_dtype"] != "float32":
                    print(
                        f"note: {path}: positions are {form['position_dtype']}, stored as float32",
                        file=sys.stderr,
                    )
            yield trajectory

    kept = {key: value for key, value in metadata.items() if key not in STATISTICS}
    return Source.from_metadata(
        "npz", folder, splits, metadata, kept, trajectories,
        provenance=lambda: {"format": "npz", "metadata": original, **form},
    )


def _compressed(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(info.compress_type != zipfile.ZIP_STORED for info in archive.infolist())


def write(dataset: Path, out: Path, progress: Callable[..., Iterable]) -> None:
    """Export our dataset folder as gns npz files plus metadata.json into `out`."""
    metadata = read_metadata(dataset)
    source = metadata.get("source", {}) if metadata.get("source", {}).get("format") == "npz" else {}
    position_dtype = source.get("position_dtype", "float32")
    particle_type_dtype = source.get("particle_type_dtype", "int64")
    dropped: set[str] = set()
    for split in SPLITS:
        if not (dataset / f"{split}.h5").is_file():
            continue
        trajectories = split_file(dataset, split, metadata)
        items = []
        for k in progress(range(len(trajectories)), desc=f"{split}{SUFFIX}"):
            trajectory = trajectories[k]
            particle_type = trajectory.particle_type.astype(particle_type_dtype)
            if source.get("scalar_particle_type") and (particle_type == particle_type[0]).all():
                particle_type = particle_type[0]
            fields = [trajectory.position.astype(position_dtype), particle_type]
            if MATERIAL in trajectory.extras:
                fields.append(trajectory.extras[MATERIAL])
            dropped |= set(trajectory.extras) - {MATERIAL}
            items.append(tuple(fields))
        names = source.get("names", {}).get(split)
        if (
            source.get("layout", LAYOUT_KEY) == LAYOUT_KEY
            or names is None
            or len(names) != len(items)
        ):
            arrays = {LAYOUT_KEY: _object_array(items)}
        else:
            arrays = {name: _object_array(item) for name, item in zip(names, items, strict=True)}
        with open(out / f"{split}{SUFFIX}", "wb") as file:
            (np.savez_compressed if source.get("compressed") else np.savez)(file, **arrays)
    if dropped:
        print(
            f"note: gns's npz has no place for {', '.join(sorted(dropped))}; not exported",
            file=sys.stderr,
        )
    write_json_atomic(out / "metadata.json", source.get("metadata") or _gns_metadata(metadata))


def _object_array(items: list | tuple) -> np.ndarray:
    """A 1-D object array holding `items` as they are (numpy would otherwise try to stack them)."""
    array = np.empty(len(items), dtype=object)
    for k, item in enumerate(items):
        array[k] = item
    return array


def _gns_metadata(metadata: dict) -> dict:
    """gns's flat metadata.json, with the periodic box kept so that the data comes back whole."""
    keys = [
        "bounds",
        "sequence_length",
        "default_connectivity_radius",
        "dim",
        "dt",
        *STATISTICS,
        "periodic_boundary_conditions",
    ]
    return {key: metadata[key] for key in keys if key in metadata}
