"""The one dataset format: a folder of `metadata.json` and `{train,valid,test}.h5`.

Each `.h5` holds one group per trajectory, named by a zero-padded index (`00000`, ...), with
`position` float32 [T, N, D] (metres) and `particle_type` int [N]; further datasets in a group
are per-trajectory extras (e.g. `material`). This is LagrangeBench's layout.

Writers write to a temporary name and rename when whole. Readers open lazily, one h5py handle
per process, and check every array they hand out; errors name the file, trajectory and field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import h5py
import numpy as np
import torch

from gnsim.atomic import clear, temporary_path, write_json_atomic
from gnsim.domain import KINEMATIC_PARTICLE, PARTICLE_TYPES, Domain
from gnsim.limits import too_big

FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
NEIGHBOUR_FRAME_STRIDE = 10  # frames between neighbour counts for `mean_neighbours`
OUTSIDE_FACTOR = 1.0  # positions further outside the bounds than this many box sizes are corrupt
CONTENT_DIGEST = "content_sha256"  # split-file attribute, matched against metadata's split_digests
INPUT_FRAMES = 6  # the GNS model sees 6 positions (5 velocities) and predicts the 7th
# Metadata numbers checked on every read: (lowest allowed, whether it must be exceeded).
METADATA_NUMBERS = {
    "bounds": (None, False), "dt": (0.0, True), "default_connectivity_radius": (0.0, True),
    "vel_mean": (None, False), "vel_std": (0.0, False), "acc_mean": (None, False), "acc_std": (0.0, False),
    "gravity": (None, False),
}
REQUIRED_METADATA = (
    "bounds", "sequence_length", "default_connectivity_radius", "dim", "dt",
    "vel_mean", "vel_std", "acc_mean", "acc_std",
)


class DatasetError(ValueError):
    """A dataset file or its metadata is missing, malformed or inconsistent."""


@dataclass
class Trajectory:
    position: np.ndarray  # float32 [T, N, D]
    particle_type: np.ndarray  # int64 [N]
    extras: dict[str, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Statistics


class MotionStatistics:
    """Streaming mean and std of per-frame velocities and accelerations, in float64.

    Velocity is the finite difference `x[t+1] - x[t]` and acceleration `x[t+2] - 2 x[t+1] + x[t]`,
    per frame (not divided by dt), over every non-kinematic particle and frame, per axis: the
    convention of DeepMind's `learning_to_simulate` metadata; in a periodic `domain` a velocity is
    the minimum image, not the box-length jump of a particle that wraps. Each trajectory's count,
    mean and sum of squared deviations are merged with Chan et al.'s pairwise update, so that a
    single pass over the training split gives the population (ddof=0) statistics without
    cancellation.
    """

    def __init__(self, dim: int, domain: Domain | None = None):
        self.velocity = _Moments(dim)
        self.acceleration = _Moments(dim)
        self.domain = domain

    def add(self, position: np.ndarray, particle_type: np.ndarray) -> None:
        x = position[:, particle_type != KINEMATIC_PARTICLE].astype(np.float64)
        velocity = np.diff(x, axis=0) if self.domain is None else self.domain.difference(x[1:], x[:-1])
        self.velocity.add(velocity.reshape(-1, x.shape[-1]))
        self.acceleration.add(np.diff(velocity, axis=0).reshape(-1, x.shape[-1]))

    def as_metadata(self) -> dict[str, list[float]]:
        return {
            "vel_mean": self.velocity.mean.tolist(), "vel_std": self.velocity.std.tolist(),
            "acc_mean": self.acceleration.mean.tolist(), "acc_std": self.acceleration.std.tolist(),
        }


class _Moments:
    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim)
        self.sum_squares = np.zeros(dim)

    def add(self, samples: np.ndarray) -> None:
        n = len(samples)
        if n == 0:
            return
        mean = samples.mean(axis=0)
        sum_squares = ((samples - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.sum_squares += sum_squares + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.sum_squares / max(self.count, 1))


# ---------------------------------------------------------------------------------------------
# Writing


class DatasetWriter:
    """Streams trajectories into a dataset folder; the folder is complete only on a clean exit.

    with DatasetWriter("datasets/water", dim=2, dt=0.0025, bounds=[[0, 1], [0, 1]],
                       connectivity_radius=0.015) as writer:
        writer.add("train", position, particle_type)
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        dim: int,
        dt: float,
        bounds: list[list[float]],
        connectivity_radius: float,
        metadata: dict | None = None,
    ):
        self.folder = Path(folder)
        self.dim = dim
        self.metadata = {
            "bounds": [[float(lo), float(hi)] for lo, hi in bounds],
            "dim": dim,
            "dt": float(dt),
            "default_connectivity_radius": float(connectivity_radius),
            "particle_type_names": {str(k): v for k, v in PARTICLE_TYPES.items()},
            "format_version": FORMAT_VERSION,
            **(metadata or {}),
        }
        try:
            domain = Domain.from_metadata(self.metadata)
        except ValueError as error:
            raise DatasetError(f"{self.folder / 'metadata.json'}: {error}") from None
        self.statistics = MotionStatistics(dim, domain)
        self._neighbours = [0, 0]  # neighbour pairs and particle-frames counted on the train split
        self._digests: dict[str, hashlib._Hash] = {}
        self._files: dict[str, h5py.File] = {}
        self._counts: dict[str, int] = {}
        self._lengths: dict[str, set[int]] = {}

    def __enter__(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def _discard(self) -> None:
        # Every split's, not only those opened: an interrupt between h5py creating a file and
        # `_files` holding it would leave that one (the names carry this process's pid alone).
        for split in SPLITS:
            self._temporary(split).unlink(missing_ok=True)

    def _temporary(self, split: str) -> Path:
        return temporary_path(self.folder / f"{split}.h5")

    def add(self, split: str, position: np.ndarray, particle_type: np.ndarray, **extras) -> None:
        """Append one trajectory to `split`; `position` [T, N, D], `particle_type` [N]."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        name = f"{split}.h5 trajectory {self._counts.get(split, 0):05d}"
        position = np.asarray(position)
        particle_type = np.asarray(particle_type)
        _check_trajectory(name, position, particle_type, self.dim)
        if split not in self._files:
            clear(self._temporary(split))  # a link planted there is removed, not written through
            self._files[split] = h5py.File(self._temporary(split), "x")  # created exclusively
            self._digests[split] = hashlib.sha256()
        group = self._files[split].create_group(f"{self._counts.get(split, 0):05d}")
        fields = {"position": position.astype(np.float32, copy=False),
                  "particle_type": particle_type.astype(np.int64, copy=False),
                  **{key: np.asarray(value) for key, value in extras.items()}}
        for key, value in fields.items():
            group.create_dataset(key, data=value)
            self._digests[split].update(key.encode() + np.ascontiguousarray(value).tobytes())
        self._counts[split] = self._counts.get(split, 0) + 1
        self._lengths.setdefault(split, set()).add(len(position))
        if split == "train":
            self.statistics.add(position, particle_type)
            self._count_neighbours(position, particle_type)

    def _count_neighbours(self, position: np.ndarray, particle_type: np.ndarray) -> None:
        """Neighbours within the default radius of each moving particle, on every 10th frame."""
        from scipy.spatial import cKDTree

        moving = particle_type != KINEMATIC_PARTICLE
        radius = self.metadata["default_connectivity_radius"]
        for frame in position[::NEIGHBOUR_FRAME_STRIDE]:
            if not np.isfinite(frame).all():
                continue
            tree = cKDTree(frame)
            counts = tree.query_ball_point(frame[moving], radius, return_length=True)
            self._neighbours[0] += int(counts.sum()) - int(moving.sum())  # not itself
            self._neighbours[1] += int(moving.sum())

    def __exit__(self, exc_type, exc, tb) -> None:
        # Each split file and the metadata name the same content digest: a split file left from
        # another write (an interrupted rewrite, a stale split) is refused on read.
        for split, file in self._files.items():
            file.attrs[CONTENT_DIGEST] = self._digests[split].hexdigest()
            file.close()
        if exc_type is not None:
            return self._discard()
        if not self._files:
            raise DatasetError(f"{self.folder}: no trajectory was written")
        # Statistics come from the training split; a folder without one (a rollout, a test-only
        # export) keeps those of the metadata it was given.
        statistics = self.statistics.as_metadata() if "train" in self._files else {}
        for key in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
            if key not in {**self.metadata, **statistics}:
                self._discard()
                raise DatasetError(f"{self.folder}: no training split was written, so metadata needs {key!r}")
        for split in self._files:
            os.replace(self._temporary(split), self.folder / f"{split}.h5")
        for split in set(SPLITS) - set(self._files):  # a split of an earlier write, not of this one
            (self.folder / f"{split}.h5").unlink(missing_ok=True)
        lengths = self._lengths.get("train") or set().union(*self._lengths.values())
        metadata = {
            **self.metadata,
            # DeepMind's convention: steps per trajectory, i.e. frames - 1.
            "sequence_length": max(lengths) - 1,
            **{f"sequence_length_{s}": max(n) - 1 for s, n in self._lengths.items()},
            **{f"num_trajectories_{s}": n for s, n in self._counts.items()},
            "split_digests": {split: digest.hexdigest() for split, digest in self._digests.items()},
            **statistics,
            # How dense the default-radius graph is: neighbours per moving particle, itself excluded.
            **({"mean_neighbours": self._neighbours[0] / self._neighbours[1]} if self._neighbours[1] else {}),
        }
        write_json_atomic(self.folder / "metadata.json", metadata)


# ---------------------------------------------------------------------------------------------
# Reading and validation


def read_json(path: Path, required: tuple[str, ...] = (), needed_by: str = "") -> dict:
    """A JSON object from `path`, with one-line errors for a missing file, bad JSON or a missing key."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found{f' ({needed_by} needs metadata.json)' if needed_by else ''}")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    missing = [key for key in required if key not in content]
    if missing:
        raise DatasetError(f"{path}: missing key {missing[0]!r}")
    return content


def read_json_lines(path: Path) -> list[dict]:
    """The records of a JSON-lines log (metrics.jsonl), each an object with a `step`. A torn last
    line, as a run killed mid-write leaves it, is dropped; a bad line before it is an error."""
    lines = Path(path).read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise DatasetError(f"{path} line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict) or "step" not in record:
            raise DatasetError(f"{path} line {number}: needs a 'step'")
        records.append(record)
    return records


def read_metadata(folder: str | os.PathLike) -> dict:
    """Read and check `folder/metadata.json`."""
    path = Path(folder) / "metadata.json"
    metadata = read_json(path, REQUIRED_METADATA)
    dim = metadata["dim"]
    if dim not in (2, 3):
        raise DatasetError(f"{path}: 'dim' must be 2 or 3, got {dim!r}")
    if np.shape(metadata["bounds"]) != (dim, 2):
        raise DatasetError(f"{path}: 'bounds' must be {dim} pairs [lo, hi]")
    for key in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
        if np.shape(metadata[key]) != (dim,):
            raise DatasetError(f"{path}: {key!r} must have {dim} entries, got {metadata[key]!r}")
    for key, rule in METADATA_NUMBERS.items():
        if key in metadata:
            _check_numbers(path, key, metadata[key], *rule)
    bounds = np.asarray(metadata["bounds"], dtype=np.float64)
    if not (bounds[:, 0] < bounds[:, 1]).all():
        raise DatasetError(f"{path}: 'bounds' must have lo < hi on every axis, got {metadata['bounds']!r}")
    return metadata


def _check_numbers(path: Path, key: str, value, lowest: float | None, above: bool) -> None:
    """Finite numbers, each at least `lowest` (above it when `above`): NaN passes every comparison."""
    try:
        numbers = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: {key!r} must be numbers, got {value!r}") from None
    if not np.isfinite(numbers).all():
        raise DatasetError(f"{path}: {key!r} must be finite, got {value!r}")
    if lowest is not None and ((numbers <= lowest) if above else (numbers < lowest)).any():
        raise DatasetError(f"{path}: {key!r} must be {'above' if above else 'at least'} {lowest:g}, got {value!r}")


def _check_trajectory(name: str, position: np.ndarray, particle_type: np.ndarray, dim: int) -> None:
    if position.ndim != 3:
        raise DatasetError(f"{name}: 'position' must have rank 3 [T, N, D], got shape {position.shape}")
    if not np.issubdtype(position.dtype, np.floating):
        raise DatasetError(f"{name}: 'position' must be float32, got {position.dtype}")
    if particle_type.ndim != 1:
        raise DatasetError(f"{name}: 'particle_type' must have rank 1 [N], got shape {particle_type.shape}")
    if not np.issubdtype(particle_type.dtype, np.integer):
        raise DatasetError(f"{name}: 'particle_type' must be integer, got {particle_type.dtype}")
    if position.shape[1] != particle_type.shape[0]:
        raise DatasetError(
            f"{name}: 'position' has {position.shape[1]} particles but 'particle_type' has {particle_type.shape[0]}"
        )
    if position.shape[2] != dim:
        raise DatasetError(f"{name}: 'position' is {position.shape[2]}D but the metadata says dim={dim}")
    unknown = sorted(set(np.unique(particle_type).tolist()) - set(PARTICLE_TYPES))
    if unknown:
        raise DatasetError(f"{name}: 'particle_type' has unknown id {unknown[0]} (known: {sorted(PARTICLE_TYPES)})")
    if not np.isfinite(position).all():
        frame = int(np.argmax(~np.isfinite(position).reshape(len(position), -1).all(axis=1)))
        raise DatasetError(f"{name}: 'position' has NaN or inf values (first at frame {frame})")


class TrajectoryFile:
    """A lazily opened split file; `file[k]` reads and checks trajectory k.

    The h5py handle is opened on first use in each process and dropped when pickled, so each
    DataLoader worker gets its own.
    """

    def __init__(self, path: str | os.PathLike, metadata: dict | None = None, min_frames: int = INPUT_FRAMES + 1):
        self.path = Path(path)
        self.metadata = metadata if metadata is not None else read_metadata(self.path.parent)
        self.min_frames = min_frames
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        self.names = sorted(self._file.keys())
        if not self.names:
            raise DatasetError(f"{self.path}: holds no trajectory")
        self._check_fields()
        expected = self.metadata.get("split_digests", {}).get(self.path.stem)
        if expected is not None and self._file.attrs.get(CONTENT_DIGEST) != expected:
            raise DatasetError(f"{self.path}: not the file metadata.json was written with (its content "
                               "digest differs): the folder mixes two writes; regenerate it")

    def _check_fields(self) -> None:
        """Every field's header (its storage, its size), so that a hostile file is refused on
        opening, before a run folder or an output exists; reads no data."""
        for k, name in enumerate(self.names):
            where = f"{self.path} trajectory {name}"
            try:
                group = checked_entry(where, self._file, name, h5py.Group)
            except (KeyError, OSError) as error:
                raise DatasetError(f"{where}: unreadable group ({_first_line(error)})") from None
            self._dataset(k, "position")  # the one field every trajectory has
            for key in group:
                checked_entry(where, group, key, h5py.Dataset)

    @property
    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            if not self.path.is_file():
                raise DatasetError(f"{self.path}: file not found")
            try:
                self._handle = h5py.File(self.path, "r")
            except OSError as error:
                raise DatasetError(f"{self.path}: not a readable HDF5 file ({_first_line(error)})") from None
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": None}

    def __len__(self) -> int:
        return len(self.names)

    def _dataset(self, k: int, key: str) -> h5py.Dataset:
        """Field `key` of trajectory k; its header was checked on opening (_check_fields)."""
        group = self._file[self.names[k]]
        if key not in group:
            raise DatasetError(f"{self.path} trajectory {self.names[k]}: missing field {key!r}")
        return group[key]

    def shape(self, k: int) -> tuple[int, ...]:
        """Shape [T, N, D] of trajectory k's positions, read from the header only."""
        return self._dataset(k, "position").shape

    def __getitem__(self, k: int) -> Trajectory:
        return self.read(k)

    def read(self, k: int, frames: slice = slice(None)) -> Trajectory:
        """Trajectory k, or the `frames` of it, checked."""
        name = f"{self.path} trajectory {self.names[k]}"
        position_field = self._dataset(k, "position")
        if position_field.ndim == 3 and len(position_field) < self.min_frames:
            raise DatasetError(
                f"{name}: 'position' has {len(position_field)} frames, fewer than the {self.min_frames} needed"
            )
        position = _read(name, "position", position_field, frames)
        particle_type = _read(name, "particle_type", self._dataset(k, "particle_type"))
        _check_trajectory(name, position, particle_type, self.metadata["dim"])
        if position.dtype != np.float32:
            raise DatasetError(f"{name}: 'position' must be float32, got {position.dtype}")
        extras = {
            key: _read(name, key, self._dataset(k, key))
            for key in self._file[self.names[k]] if key not in ("position", "particle_type")
        }
        # The simulator's positions (a rollout's ground truth): a model's prediction may wander.
        simulated = ("ground_truth", extras["ground_truth"]) if "ground_truth" in extras else ("position", position)
        _check_inside(name, *simulated, self.metadata["bounds"], frames.start or 0)
        if frames == slice(None):  # a window may rest; a whole trajectory that never moves is no data
            _check_moves(name, *simulated, particle_type)
        return Trajectory(position, particle_type.astype(np.int64), extras)

    def particle_type_ids(self) -> set[int]:
        """The particle type ids of every trajectory, reading no positions."""
        return {int(i) for k in range(len(self)) for i in np.unique(self._dataset(k, "particle_type")[()])}


def checked_entry(where: str, group: h5py.Group, key: str, kind: type) -> h5py.Group | h5py.Dataset:
    """`group[key]`, refused unless it is a `kind` stored in this file and small enough to read.

    HDF5 can point a dataset's bytes at any file on disk (external raw storage, virtual datasets,
    external links): reading one would hand out, or convert, a file the user never named. A
    chunked dataset can declare any shape in a few bytes: its size is checked before reading.
    """
    link = group.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise DatasetError(f"{where}: {key!r} is a {type(link).__name__} (links are refused: "
                           "a dataset must hold its own data)")
    entry = group[key]
    if not isinstance(entry, kind):
        raise DatasetError(f"{where}: {key!r} is not an HDF5 {kind.__name__.lower()}")
    if isinstance(entry, h5py.Dataset):
        _check_storage(where, key, entry)
    return entry


def _check_storage(where: str, key: str, dataset: h5py.Dataset) -> None:
    if dataset.is_virtual:
        raise DatasetError(f"{where}: field {key!r} is a virtual dataset (refused: its data would "
                           "come from other files)")
    if dataset.external:
        raise DatasetError(f"{where}: field {key!r} keeps its data in the external file "
                           f"{os.fsdecode(dataset.external[0][0])!r} (refused)")
    reason = too_big(dataset.size * dataset.dtype.itemsize)
    if reason:
        raise DatasetError(f"{where}: field {key!r} of shape {dataset.shape} {reason}")
    stored, spanned = _stored_chunks(dataset)
    if stored < spanned:
        raise DatasetError(f"{where}: field {key!r} stores {stored} of its {spanned} chunks (the rest would "
                           "read as its fill value: it was never written)")


def _stored_chunks(dataset: h5py.Dataset) -> tuple[int, int]:
    """(chunks stored, chunks the shape spans); a contiguous dataset is one chunk."""
    if dataset.size == 0:
        return 0, 0
    if dataset.chunks is None:
        return int(dataset.id.get_storage_size() > 0), 1
    spanned = math.prod(-(-extent // chunk) for extent, chunk in zip(dataset.shape, dataset.chunks))
    return dataset.id.get_num_chunks(), spanned


def _check_inside(name: str, key: str, position: np.ndarray, bounds: list, first_frame: int) -> None:
    """A simulator's particle can leak past a wall, never by a whole box (nor can a periodic one,
    which the data wraps): such a position is corrupt."""
    bounds = np.asarray(bounds, dtype=np.float64)
    extent = bounds[:, 1] - bounds[:, 0]
    outside = (position < bounds[:, 0] - OUTSIDE_FACTOR * extent) | (position > bounds[:, 1] + OUTSIDE_FACTOR * extent)
    if outside.any():
        frame, particle, axis = np.argwhere(outside)[0]
        raise DatasetError(f"{name}: {key}[{first_frame + frame}, {particle}, {axis}] = "
                           f"{position[frame, particle, axis]:.3g} lies more than {OUTSIDE_FACTOR:g} box size "
                           f"outside the bounds {bounds[axis].tolist()}")


def _check_moves(name: str, key: str, position: np.ndarray, particle_type: np.ndarray) -> None:
    """Some non-kinematic particle must move: a trajectory frozen in every frame (a fill value, a
    copied frame) teaches nothing and its statistics are zero."""
    moving = position[:, particle_type != KINEMATIC_PARTICLE]
    if len(position) > 1 and moving.size and (moving == moving[:1]).all():
        raise DatasetError(f"{name}: {key!r} never moves: every frame equals the first")


def _read(name: str, key: str, dataset: h5py.Dataset, frames: slice = slice(None)) -> np.ndarray:
    try:
        return dataset[frames] if dataset.ndim else dataset[()]
    except (OSError, ValueError, KeyError) as error:
        raise DatasetError(f"{name}: field {key!r} is unreadable ({_first_line(error)})") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def split_file(folder: str | os.PathLike, split: str, metadata: dict | None = None) -> TrajectoryFile:
    """The checked `TrajectoryFile` of one split of a dataset folder."""
    path = Path(folder) / f"{split}.h5"
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    return TrajectoryFile(path, metadata)


def validate(folder: str | os.PathLike) -> dict:
    """Read every trajectory of every split present once; return the metadata if all is well."""
    metadata = read_metadata(folder)
    if not (Path(folder) / "train.h5").is_file():
        raise DatasetError(f"{Path(folder) / 'train.h5'}: file not found")
    for split in SPLITS:
        if (Path(folder) / f"{split}.h5").is_file():
            trajectories = split_file(folder, split, metadata)
            for k in range(len(trajectories)):
                trajectories.read(k)
    return metadata


# ---------------------------------------------------------------------------------------------
# Torch views


def _as_tensors(trajectory: Trajectory, position: np.ndarray) -> dict[str, torch.Tensor]:
    return {
        "position": torch.from_numpy(np.ascontiguousarray(position)),
        "particle_type": torch.from_numpy(trajectory.particle_type),
        **{key: torch.as_tensor(value) for key, value in trajectory.extras.items()},
    }


class WindowDataset(torch.utils.data.Dataset):
    """One-step samples: `input_frames` consecutive positions plus the target frame after them
    (and `extra_frames` more, for pushforward).

    Sample i of a split is frames `[s, s + input_frames]` of the trajectory it falls in, where the
    samples of trajectory k are numbered after those of trajectories 0..k-1 and s counts from 0.
    """

    def __init__(self, folder: str | os.PathLike, split: str = "train", input_frames: int = INPUT_FRAMES,
                 extra_frames: int = 0):
        self.metadata = read_metadata(folder)
        self.file = split_file(folder, split, self.metadata)
        self.input_frames = input_frames
        self.window = input_frames + 1 + extra_frames  # extra: the true frames a pushforward unrolls to
        self.file.min_frames = self.window
        shapes = [self.file.shape(k) for k in range(len(self.file))]  # headers only, read once
        lengths = [shape[0] for shape in shapes]
        for k, length in enumerate(lengths):
            if length < self.window:
                raise DatasetError(
                    f"{self.file.path} trajectory {self.file.names[k]}: 'position' has {length} frames, "
                    f"fewer than the {self.window} needed"
                )
        self.offsets = np.cumsum([0] + [length - self.window + 1 for length in lengths])
        self._particles = [shape[1] for shape in shapes]

    def mean_particles(self) -> float:
        """Particles per sample, averaged over the samples."""
        return float(np.dot(np.diff(self.offsets), self._particles) / self.offsets[-1])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(trajectory, first frame) of sample `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return k, index - int(self.offsets[k])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        k, start = self.locate(index)
        trajectory = self.file.read(k, slice(start, start + self.window))
        return _as_tensors(trajectory, trajectory.position)


class TrajectoryDataset(torch.utils.data.Dataset):
    """Whole trajectories, for rollouts."""

    def __init__(self, folder: str | os.PathLike, split: str = "test", min_frames: int = INPUT_FRAMES + 1):
        self.metadata = read_metadata(folder)
        self.file = split_file(folder, split, self.metadata)
        self.file.min_frames = min_frames

    def __len__(self) -> int:
        return len(self.file)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        trajectory = self.file.read(k)
        return _as_tensors(trajectory, trajectory.position)
