"""Converters between gnsim datasets and DeepMind TFRecord, gns npz and LagrangeBench HDF5."""

from gnsim.convert.pipeline import (
    SOURCE_FORMATS,
    TARGET_FORMATS,
    convert,
    detect_format,
    ensure_dataset,
)

__all__ = ["SOURCE_FORMATS", "TARGET_FORMATS", "convert", "detect_format", "ensure_dataset"]
