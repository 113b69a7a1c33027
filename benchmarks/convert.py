"""Time DeepMind TFRecord -> gnsim -> TFRecord on a WaterDrop-sized split; print one JSON line.

The source is written with protobuf's own serializer (not ours), 1001 frames of N particles in 2D
per trajectory like WaterDrop; the round trip is checked byte for byte before timing is reported.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.deepmind_tfrecord import deepmind_record, write_tfrecord
from gnsim.convert import convert
from gnsim.convert.tfrecord import masked_crc32c


def random_walk(rng: np.random.Generator, frames: int, particles: int) -> np.ndarray:
    walk = np.cumsum(rng.normal(0, 1e-3, (frames, particles, 2)), axis=0)
    return (0.5 + walk).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trajectories", type=int, default=4)
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=1001)
    args = parser.parse_args()
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
        # The tests' writer (protobuf messages), with the fast CRC the tests check against a reference.
        records = (
            deepmind_record(key, random_walk(rng, args.frames, args.particles),
                            np.full(args.particles, 5))
            for key in range(args.trajectories)
        )
        write_tfrecord(source / "train.tfrecord", records, masked_crc32c)
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
