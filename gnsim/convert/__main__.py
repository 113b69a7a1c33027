"""python -m gnsim.convert SRC DST [--from FORMAT] [--to gnsim|tfrecord|npz]"""

from __future__ import annotations

import argparse
import sys

from gnsim.convert.pipeline import (
    DESCRIPTIONS,
    SOURCE_FORMATS,
    TARGET_FORMATS,
    convert,
    detect_format,
)
from gnsim.dataset import DatasetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gnsim.convert",
        description="Convert a particle dataset folder between gnsim's HDF5 format and DeepMind "
        "learning_to_simulate TFRecord, geoelements/gns npz and LagrangeBench HDF5; "
        "read geoelements taichi_mpm output (trajectoryK.npz beside inputs_2d_K.json).",
        epilog="examples: python -m gnsim.convert WaterDrop datasets/WaterDrop "
        "(TFRecord -> gnsim); python -m gnsim.convert datasets/water water-npz --to npz "
        "(gnsim -> gns npz)",
    )
    parser.add_argument("src", metavar="SRC", help="dataset folder to read")
    parser.add_argument("dst", metavar="DST", help="folder to create (must not exist, or be empty)")
    parser.add_argument(
        "--from",
        dest="from_format",
        choices=SOURCE_FORMATS,
        help="format of SRC (default: detected from its files)",
    )
    parser.add_argument(
        "--to", choices=TARGET_FORMATS, default="gnsim", help="format of DST (default: gnsim)"
    )
    args = parser.parse_args(argv)
    try:
        source_format = args.from_format or detect_format(args.src)
        convert(args.src, args.dst, source_format, args.to)
    except (DatasetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} ({DESCRIPTIONS[source_format]} -> {DESCRIPTIONS[args.to]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
