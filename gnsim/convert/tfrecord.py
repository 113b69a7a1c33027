"""DeepMind `learning_to_simulate` datasets: `metadata.json` plus `{train,valid,test}.tfrecord`.

A TFRecord file is a run of records, each framed as (tensorflow/core/lib/io/record_writer.cc)

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

little-endian, where masked_crc32c(x) = rotate_right(crc32c(x), 15) + 0xa282ead8. Every record
is one `tf.train.SequenceExample` (learning_to_simulate/reading_utils.py): context `key` (int64)
and `particle_type` (int64 bytes), feature lists `position` (float32 bytes [N, dim] per frame,
sequence_length + 1 frames) and, when the metadata has `context_mean`, `step_context` (float32
bytes per frame).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import google_crc32c
import numpy as np

from gnsim.atomic import write_json_atomic
from gnsim.convert import sequence_example
from gnsim.convert.sequence_example import BYTES, INT64, Feature, SequenceExample
from gnsim.convert.source import STATISTICS, Source, TrajectoryRecord, available_splits
from gnsim.dataset import (
    SPLITS,
    DatasetError,
    read_json,
    read_metadata,
    split_file,
)

SUFFIX = ".tfrecord"
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C, so that a CRC of CRCs does not collide (crc32c.h)."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Framing


def read_records(path: Path) -> Iterator[bytes]:
    """Yield the payload of each record of a TFRecord file, checking both CRCs and lengths."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        index = 0
        while header := file.read(_HEADER.size):
            where = f"{path} record {index}"
            if len(header) < _HEADER.size:
                raise DatasetError(
                    f"{where}: truncated header ({len(header)} of {_HEADER.size} bytes)"
                )
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise DatasetError(f"{where}: bad CRC of the record length (corrupted file)")
            left = size - file.tell()
            if length + 4 > left:  # checked before reading: a header may claim terabytes
                raise DatasetError(
                    f"{where}: truncated record ({length + 4} bytes expected after the header, "
                    f"{left} found)"
                )
            data = file.read(length)
            footer = file.read(4)
            if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise DatasetError(f"{where}: bad CRC of the record data (corrupted file)")
            yield data
            index += 1


def count_records(path: Path) -> int:
    """Number of records, from the length headers alone (no data read)."""
    count, size = 0, path.stat().st_size
    with open(path, "rb") as file:
        while header := file.read(_HEADER.size):
            if len(header) < _HEADER.size:
                break
            end = file.tell() + _HEADER.unpack(header)[0] + 4
            if end > size:  # truncated or corrupted: the reader names the record
                break
            file.seek(end)
            count += 1
    return count


def frame_record(data: bytes) -> bytes:
    """One record, framed with its length and both masked CRCs."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


# ---------------------------------------------------------------------------------------------
# Reading a DeepMind dataset


def _bytes(where: str, feature: Feature | None, name: str) -> bytes:
    if feature is None:
        raise DatasetError(f"{where}: missing feature {name!r}")
    if feature.kind != BYTES:
        raise DatasetError(
            f"{where}: feature {name!r} is a {feature.kind}_list, expected bytes_list"
        )
    return b"".join(feature.values)


def _frames(where: str, steps: list[Feature], name: str, width: int | None) -> np.ndarray:
    """Stack the per-frame float32 byte strings of feature list `name` into [T, rows, width]."""
    raw = [_bytes(f"{where} frame {t}", step, name) for t, step in enumerate(steps)]
    if not raw or not raw[0]:
        raise DatasetError(f"{where}: {name!r} is empty")
    width = width or len(raw[0]) // 4
    for t, frame in enumerate(raw):
        if len(frame) % (4 * width) or len(frame) != len(raw[0]):
            raise DatasetError(
                f"{where} frame {t}: {name!r} has {len(frame)} bytes where the metadata and "
                f"frame 0 mean a whole number of float32 rows of {width}, {len(raw[0])} bytes"
            )
    return np.frombuffer(b"".join(raw), "<f4").reshape(len(raw), -1, width)


def decode_trajectory(where: str, record: bytes, metadata: dict) -> tuple[int, TrajectoryRecord]:
    """(key, trajectory) of one serialized record, checked against the metadata."""
    try:
        example = sequence_example.decode(record)
    except sequence_example.WireError as error:
        raise DatasetError(f"{where}: not a tf.train.SequenceExample ({error})") from None
    expected = {"key", "particle_type"}, {"position", "step_context"}
    for names, allowed in zip((example.context, example.feature_lists), expected, strict=True):
        unknown = sorted(set(names) - allowed)
        if unknown:
            raise DatasetError(
                f"{where}: unsupported feature {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
            )
    key = example.context.get("key", Feature(INT64, [0]))  # reading_utils' default_value=0
    if key.kind != INT64 or len(key.values) != 1:
        raise DatasetError(f"{where}: context 'key' must be one int64")
    particle_type_bytes = _bytes(where, example.context.get("particle_type"), "particle_type")
    if len(particle_type_bytes) % 8:
        raise DatasetError(
            f"{where}: 'particle_type' has {len(particle_type_bytes)} bytes, not whole int64s"
        )
    particle_type = np.frombuffer(particle_type_bytes, "<i8")
    dim, frames = metadata["dim"], metadata["sequence_length"] + 1
    if "position" not in example.feature_lists:
        raise DatasetError(f"{where}: missing feature list 'position'")
    position = _frames(where, example.feature_lists["position"], "position", dim)
    if position.shape[0] != frames:
        raise DatasetError(
            f"{where}: 'position' has {position.shape[0]} frames but metadata sequence_length "
            f"{metadata['sequence_length']} means {frames}"
        )
    if position.shape[1] != len(particle_type):
        raise DatasetError(
            f"{where}: 'position' has {position.shape[1]} particles but 'particle_type' has "
            f"{len(particle_type)}"
        )
    extras = {}
    if "step_context" in example.feature_lists:
        width = len(metadata.get("context_mean", [])) or None
        step_context = _frames(where, example.feature_lists["step_context"], "step_context", width)
        if step_context.shape[:2] != (frames, 1):
            raise DatasetError(
                f"{where}: 'step_context' has shape {step_context.shape[:2]} frames x rows, "
                f"expected ({frames}, 1)"
            )
        extras["step_context"] = step_context[:, 0]
    elif "context_mean" in metadata:
        raise DatasetError(
            f"{where}: missing feature list 'step_context' (the metadata has 'context_mean')"
        )
    return key.values[0], TrajectoryRecord(
        position.astype(np.float32), particle_type.astype(np.int64), extras
    )


def read(folder: Path) -> Source:
    """A DeepMind TFRecord dataset as a stream of checked trajectories."""
    metadata = read_json(
        folder / "metadata.json", ("dim", "dt", "bounds", "default_connectivity_radius", "sequence_length"), "a DeepMind dataset"
    )
    splits = available_splits(folder, SUFFIX)
    keys: dict[str, list[int]] = {}

    def trajectories(split: str) -> tuple[int, Iterator[TrajectoryRecord]]:
        return count_records(splits[split]), stream(split, splits[split])

    def stream(split: str, path: Path) -> Iterator[TrajectoryRecord]:
        keys[split] = []
        for index, record in enumerate(read_records(path)):
            key, trajectory = decode_trajectory(f"{path} record {index}", record, metadata)
            keys[split].append(key)
            yield trajectory

    def provenance() -> dict:
        # DeepMind's keys count 0, 1, ... per file; others are kept so that export restores them.
        unusual = {split: k for split, k in keys.items() if k != list(range(len(k)))}
        return {
            "format": "tfrecord",
            "metadata": metadata,
            **({"keys": unusual} if unusual else {}),
        }

    kept = {key: value for key, value in metadata.items() if key not in STATISTICS}
    return Source.from_metadata("tfrecord", folder, splits, metadata, kept, trajectories, provenance)


# ---------------------------------------------------------------------------------------------
# Writing a DeepMind dataset from ours


def encode_trajectory(
    key: int,
    position: np.ndarray,
    particle_type: np.ndarray,
    step_context: np.ndarray | None = None,
) -> bytes:
    """One serialized SequenceExample in DeepMind's schema."""
    feature_lists = {
        "position": [Feature(BYTES, [frame.astype("<f4").tobytes()]) for frame in position]
    }
    if step_context is not None:
        feature_lists["step_context"] = [
            Feature(BYTES, [row.astype("<f4").tobytes()]) for row in step_context
        ]
    context = {
        "key": Feature(INT64, [int(key)]),
        "particle_type": Feature(BYTES, [particle_type.astype("<i8").tobytes()]),
    }
    return sequence_example.encode(SequenceExample(context, feature_lists))


def deepmind_metadata(metadata: dict) -> dict:
    """The metadata.json DeepMind's reader expects: the original one if the data came from there."""
    source = metadata.get("source", {})
    if source.get("format") == "tfrecord":
        return source["metadata"]
    keys = [
        "bounds",
        "sequence_length",
        "default_connectivity_radius",
        "dim",
        "dt",
        *STATISTICS,
        "context_mean",
        "context_std",
        "periodic_boundary_conditions",
    ]
    return {key: metadata[key] for key in keys if key in metadata}


def write(dataset: Path, out: Path, progress: Callable[..., Iterable]) -> None:
    """Export our dataset folder as DeepMind TFRecord files plus metadata.json into `out`."""
    metadata = read_metadata(dataset)
    deepmind = deepmind_metadata(metadata)
    frames = deepmind["sequence_length"] + 1
    keys = (
        metadata.get("source", {}).get("keys", {})
        if metadata.get("source", {}).get("format") == "tfrecord"
        else {}
    )
    dropped: set[str] = set()
    for split in SPLITS:
        if not (dataset / f"{split}.h5").is_file():
            continue
        trajectories = split_file(dataset, split, metadata)
        split_keys = keys.get(split, [])
        if len(split_keys) != len(trajectories):
            split_keys = list(range(len(trajectories)))
        with open(out / f"{split}{SUFFIX}", "wb") as file:
            for k in progress(range(len(trajectories)), desc=f"{split}{SUFFIX}"):
                trajectory = trajectories[k]
                if len(trajectory.position) != frames:
                    raise DatasetError(
                        f"{trajectories.path} trajectory {trajectories.names[k]}: "
                        f"{len(trajectory.position)} frames, but DeepMind's reader needs "
                        f"sequence_length + 1 = {frames} in every trajectory"
                    )
                dropped |= set(trajectory.extras) - {"step_context"}
                record = encode_trajectory(
                    split_keys[k],
                    trajectory.position,
                    trajectory.particle_type,
                    trajectory.extras.get("step_context"),
                )
                file.write(frame_record(record))
    if dropped:
        print(
            f"note: DeepMind's schema has no place for {', '.join(sorted(dropped))}; not exported",
            file=sys.stderr,
        )
    write_json_atomic(out / "metadata.json", deepmind)
