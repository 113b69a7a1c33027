"""`tf.train.SequenceExample` on the protobuf wire, decoded and encoded by hand (no TensorFlow).

The schema (tensorflow/core/example/{example,feature}.proto) is four small messages:

    SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }
    Features        { map<string, Feature> feature = 1; }
    FeatureLists    { map<string, FeatureList> feature_list = 1; }
    FeatureList     { repeated Feature feature = 1; }
    Feature         { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                                Int64List int64_list = 3; } }

A map is a repeated entry message {key = 1; value = 2}. Decoding skips unknown fields and
accepts packed and unpacked scalars, as any protobuf parser does; encoding is canonical
(map keys sorted, scalars packed), which is what protobuf's `deterministic=True` writes, so a
file written that way is reproduced byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

BYTES, FLOAT, INT64 = "bytes", "float", "int64"
_KINDS = {1: BYTES, 2: FLOAT, 3: INT64}


class WireError(ValueError):
    """The bytes are not a well-formed SequenceExample."""


@dataclass
class Feature:
    kind: str  # BYTES, FLOAT or INT64
    values: list  # bytes objects, floats or ints


@dataclass
class SequenceExample:
    context: dict[str, Feature]
    feature_lists: dict[str, list[Feature]]


# ---------------------------------------------------------------------------------------------
# Decoding


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise WireError("varint runs past the end of the message")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def _fields(data: memoryview):
    """Yield (field number, wire type, value) of one message; value is an int or a memoryview."""
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, at = _varint(data, at)
        elif wire_type == 1:
            value, at = data[at : at + 8], at + 8
        elif wire_type == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire_type == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise WireError(f"unsupported wire type {wire_type} in field {number}")
        if at > len(data):
            raise WireError(f"field {number} runs past the end of the message")
        yield number, wire_type, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _feature(data: memoryview) -> Feature:
    feature = Feature(BYTES, [])
    for number, wire_type, value in _fields(data):
        if number not in _KINDS or wire_type != 2:
            continue
        feature = Feature(_KINDS[number], [])  # oneof: the last one set wins
        for item_number, item_type, item in _fields(value):
            if item_number != 1:
                continue
            if feature.kind == BYTES and item_type == 2:
                feature.values.append(bytes(item))
            elif feature.kind == FLOAT and item_type == 2:  # packed
                feature.values.extend(np.frombuffer(item, "<f4").tolist())
            elif feature.kind == FLOAT and item_type == 5:
                feature.values.append(struct.unpack("<f", item)[0])
            elif feature.kind == INT64 and item_type == 2:  # packed
                at = 0
                while at < len(item):
                    number_value, at = _varint(item, at)
                    feature.values.append(_signed64(number_value))
            elif feature.kind == INT64 and item_type == 0:
                feature.values.append(_signed64(item))
            else:
                raise WireError(f"{feature.kind}_list value has wire type {item_type}")
    return feature


def _map_entry(data: memoryview) -> tuple[str, memoryview]:
    key, value = "", memoryview(b"")
    for number, wire_type, item in _fields(data):
        if number == 1 and wire_type == 2:
            key = bytes(item).decode("utf-8")
        elif number == 2 and wire_type == 2:
            value = item
    return key, value


def decode(record: bytes) -> SequenceExample:
    """Parse one serialized `tf.train.SequenceExample`."""
    example = SequenceExample({}, {})
    try:
        for number, wire_type, value in _fields(memoryview(record)):
            if wire_type != 2 or number not in (1, 2):
                continue
            for entry_number, entry_type, entry in _fields(value):
                if entry_number != 1 or entry_type != 2:
                    continue
                key, payload = _map_entry(entry)
                if number == 1:
                    example.context[key] = _feature(payload)
                else:
                    example.feature_lists[key] = [
                        _feature(item)
                        for item_number, item_type, item in _fields(payload)
                        if item_number == 1 and item_type == 2
                    ]
    except UnicodeDecodeError:
        raise WireError("a feature name is not UTF-8") from None
    return example


# ---------------------------------------------------------------------------------------------
# Encoding (canonical: sorted map keys, packed scalars)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> ten-byte two's complement, as protobuf does
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_feature(feature: Feature) -> bytes:
    if feature.kind == BYTES:
        body = b"".join(_length_delimited(1, value) for value in feature.values)
        return _length_delimited(1, body)
    if feature.kind == FLOAT:
        body = (
            _length_delimited(1, np.asarray(feature.values, "<f4").tobytes())
            if feature.values
            else b""
        )
        return _length_delimited(2, body)
    packed = b"".join(_encode_varint(int(value)) for value in feature.values)
    return _length_delimited(3, _length_delimited(1, packed) if feature.values else b"")


def _encode_entry(key: str, value: bytes) -> bytes:
    return _length_delimited(
        1, _length_delimited(1, key.encode("utf-8")) + _length_delimited(2, value)
    )


def encode(example: SequenceExample) -> bytes:
    """Serialize a `tf.train.SequenceExample` canonically."""
    context = b"".join(
        _encode_entry(key, _encode_feature(example.context[key])) for key in sorted(example.context)
    )
    feature_lists = b"".join(
        _encode_entry(
            key,
            b"".join(_length_delimited(1, _encode_feature(f)) for f in example.feature_lists[key]),
        )
        for key in sorted(example.feature_lists)
    )
    return (_length_delimited(1, context) if example.context else b"") + (
        _length_delimited(2, feature_lists) if example.feature_lists else b""
    )
