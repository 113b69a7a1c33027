"""Time DeepMind TFRecord -> gnsim -> TFRecord on a WaterDrop-sized split; print one JSON line.

The source is written with protobuf's own serializer (not ours), 1001 frames of N particles in 2D
per trajectory like WaterDrop; the round trip is checked byte for byte before timing is reported.
"""

import argparse
import json
import struct
import tempfile
import time
from pathlib import Path

import google_crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gnsim.convert import convert


def sequence_example_class():
    """tensorflow.SequenceExample from example.proto / feature.proto, declared with descriptors."""
    file = descriptor_pb2.FileDescriptorProto(
        name="bench_example.proto", package="tensorflow", syntax="proto3"
    )
    F = descriptor_pb2.FieldDescriptorProto
    for name, kind in (
        ("BytesList", F.TYPE_BYTES),
        ("FloatList", F.TYPE_FLOAT),
        ("Int64List", F.TYPE_INT64),
    ):
        file.message_type.add(name=name).field.add(
            name="value", number=1, type=kind, label=F.LABEL_REPEATED
        )
    feature = file.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, name in enumerate(("BytesList", "FloatList", "Int64List"), start=1):
        feature.field.add(
            name=name[:-4].lower() + "_list",
            number=number,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_OPTIONAL,
            type_name=f".tensorflow.{name}",
            oneof_index=0,
        )
    file.message_type.add(name="FeatureList").field.add(
        name="feature",
        number=1,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=".tensorflow.Feature",
    )
    for container, value, map_field in (
        ("Features", "Feature", "feature"),
        ("FeatureLists", "FeatureList", "feature_list"),
    ):
        message = file.message_type.add(name=container)
        entry = message.nested_type.add(name="Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        entry.field.add(
            name="value",
            number=2,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_OPTIONAL,
            type_name=f".tensorflow.{value}",
        )
        message.field.add(
            name=map_field,
            number=1,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_REPEATED,
            type_name=f".tensorflow.{container}.Entry",
        )
    example = file.message_type.add(name="SequenceExample")
    example.field.add(
        name="context",
        number=1,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_OPTIONAL,
        type_name=".tensorflow.Features",
    )
    example.field.add(
        name="feature_lists",
        number=2,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_OPTIONAL,
        type_name=".tensorflow.FeatureLists",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.SequenceExample"))


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trajectories", type=int, default=4)
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=1001)
    args = parser.parse_args()
    SequenceExample = sequence_example_class()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "WaterDrop"
        source.mkdir()
        (source / "metadata.json").write_text(
            json.dumps(
                {
                    "bounds": [[0.1, 0.9], [0.1, 0.9]],
                    "sequence_length": args.frames - 1,
                    "default_connectivity_radius": 0.015,
                    "dim": 2,
                    "dt": 0.0025,
                    "vel_mean": [0, 0],
                    "vel_std": [1, 1],
                    "acc_mean": [0, 0],
                    "acc_std": [1, 1],
                }
            )
        )
        with open(source / "train.tfrecord", "wb") as file:
            for key in range(args.trajectories):
                position = 0.5 + np.cumsum(
                    rng.normal(0, 1e-3, (args.frames, args.particles, 2)), axis=0
                )
                example = SequenceExample()
                example.context.feature["key"].int64_list.value.append(key)
                example.context.feature["particle_type"].bytes_list.value.append(
                    np.full(args.particles, 5, dtype=np.int64).tobytes()
                )
                frames = example.feature_lists.feature_list["position"].feature
                for frame in position.astype(np.float32):
                    frames.add().bytes_list.value.append(frame.tobytes())
                data = example.SerializeToString(deterministic=True)
                length = struct.pack("<Q", len(data))
                file.write(
                    length
                    + struct.pack("<I", masked_crc(length))
                    + data
                    + struct.pack("<I", masked_crc(data))
                )
        megabytes = (source / "train.tfrecord").stat().st_size / 1e6
        start = time.perf_counter()
        convert(source, Path(folder) / "ours")
        imported = time.perf_counter() - start
        start = time.perf_counter()
        convert(Path(folder) / "ours", Path(folder) / "back", to="tfrecord")
        exported = time.perf_counter() - start
        exact = (source / "train.tfrecord").read_bytes() == (
            Path(folder) / "back/train.tfrecord"
        ).read_bytes()
    print(
        json.dumps(
            {
                "benchmark": "convert_tfrecord",
                "trajectories": args.trajectories,
                "particles": args.particles,
                "frames": args.frames,
                "megabytes": round(megabytes, 1),
                "import_MB_per_s": round(megabytes / imported, 1),
                "export_MB_per_s": round(megabytes / exported, 1),
                "round_trip_byte_exact": exact,
            }
        )
    )


if __name__ == "__main__":
    main()
