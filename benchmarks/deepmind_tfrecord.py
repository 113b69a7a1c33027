"""An independent writer of DeepMind learning_to_simulate TFRecords: protobuf's own serializer and
a reference CRC-32C, never gnsim's converter. The converter tests read what it writes, and
`benchmarks.convert` times the converter on it.
"""

import struct

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (
                (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
            )  # Castagnoli polynomial, reflected
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def reference_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def reference_masked_crc(data: bytes) -> int:
    crc = reference_crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _sequence_example_class():
    """tensorflow.SequenceExample, declared from example.proto and feature.proto (proto3)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="test_tf_example.proto", package="tensorflow", syntax="proto3"
    )
    F = descriptor_pb2.FieldDescriptorProto

    def field(message, name, number, kind, label=F.LABEL_OPTIONAL, type_name=None, oneof=None):
        f = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof
        return f

    for name, kind in (
        ("BytesList", F.TYPE_BYTES),
        ("FloatList", F.TYPE_FLOAT),
        ("Int64List", F.TYPE_INT64),
    ):
        field(file.message_type.add(name=name), "value", 1, kind, F.LABEL_REPEATED)
    feature = file.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, name in enumerate(("bytes_list", "float_list", "int64_list"), start=1):
        field(
            feature,
            name,
            number,
            F.TYPE_MESSAGE,
            type_name=f".tensorflow.{name.title().replace('_', '')}",
            oneof=0,
        )
    field(
        file.message_type.add(name="FeatureList"),
        "feature",
        1,
        F.TYPE_MESSAGE,
        F.LABEL_REPEATED,
        ".tensorflow.Feature",
    )
    for container, map_field, value in (
        ("Features", "feature", "Feature"),
        ("FeatureLists", "feature_list", "FeatureList"),
    ):
        message = file.message_type.add(name=container)
        entry = message.nested_type.add(name=f"{value}Entry")
        entry.options.map_entry = True
        field(entry, "key", 1, F.TYPE_STRING)
        field(entry, "value", 2, F.TYPE_MESSAGE, type_name=f".tensorflow.{value}")
        field(
            message,
            map_field,
            1,
            F.TYPE_MESSAGE,
            F.LABEL_REPEATED,
            f".tensorflow.{container}.{value}Entry",
        )
    sequence_example = file.message_type.add(name="SequenceExample")
    field(sequence_example, "context", 1, F.TYPE_MESSAGE, type_name=".tensorflow.Features")
    field(
        sequence_example, "feature_lists", 2, F.TYPE_MESSAGE, type_name=".tensorflow.FeatureLists"
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.SequenceExample"))


SequenceExample = _sequence_example_class()


def deepmind_record(key, position, particle_type, step_context=None) -> bytes:
    """One trajectory in learning_to_simulate's schema, serialized by protobuf."""
    example = SequenceExample()
    example.context.feature["key"].int64_list.value.append(key)
    example.context.feature["particle_type"].bytes_list.value.append(
        particle_type.astype(np.int64).tobytes()
    )
    for frame in position:
        example.feature_lists.feature_list["position"].feature.add().bytes_list.value.append(
            frame.tobytes()
        )
    if step_context is not None:
        for row in step_context:
            example.feature_lists.feature_list[
                "step_context"
            ].feature.add().bytes_list.value.append(row.tobytes())
    return example.SerializeToString(deterministic=True)


def write_tfrecord(path, records, masked_crc=reference_masked_crc):
    """TFRecord framing: length, its masked CRC-32C, data, its masked CRC-32C."""
    with open(path, "wb") as file:
        for data in records:
            length = struct.pack("<Q", len(data))
            file.write(length + struct.pack("<I", masked_crc(length)))
            file.write(data + struct.pack("<I", masked_crc(data)))
