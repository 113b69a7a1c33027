"""Export a rollout or a dataset trajectory to ParaView: a `.vtp` file per frame and a `.pvd` index.

python -m viz.export runs/water/rollouts/test/test.h5 --vtk out/ [--trajectory 0]
  writes out/trajectory_00000.pvd and out/trajectory_00000/frame_NNNNN.vtp, with point data
  `particle_type`, `velocity` (m/s) and, for a rollout, `error` (m): each predicted particle's
  distance to the ground truth. 2D positions get z = 0. The folder appears whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pyvista as pv

from gnsim.atomic import replacing_folder
from gnsim.dataset import DatasetError, TrajectoryFile, read_metadata
from viz.points import as_3d


def frame_fields(position: np.ndarray, dt: float, truth: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-frame point data [T, N, ...]: velocity by backward difference (the first frame's forward)."""
    velocity = np.diff(position, axis=0, prepend=position[:1]) / dt
    if len(position) > 1:
        velocity[0] = (position[1] - position[0]) / dt
    fields = {"velocity": as_3d(velocity)}
    if truth is not None:
        fields["error"] = np.linalg.norm(position - truth, axis=-1)
    return fields


def export(path: str | os.PathLike, out: str | os.PathLike, trajectory: int = 0) -> Path:
    """Write trajectory `trajectory` of `path` (a rollout or dataset split .h5) into folder `out`;
    returns the .pvd index."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    file = TrajectoryFile(path, read_metadata(path.parent), min_frames=1)
    if not 0 <= trajectory < len(file):
        raise DatasetError(f"{path}: no trajectory {trajectory} (it holds {len(file)})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: exists and is not an empty folder")
    data = file[trajectory]
    truth = data.extras.get("ground_truth")
    dt = float(file.metadata["dt"])
    fields = frame_fields(data.position.astype(np.float64), dt, None if truth is None else np.asarray(truth))
    points = as_3d(data.position)
    name = f"trajectory_{trajectory:05d}"
    with replacing_folder(out) as staging:  # out: absent or empty, checked above
        (staging / name).mkdir()
        entries = []
        for t in range(len(points)):
            cloud = pv.PolyData(points[t])
            cloud.point_data["particle_type"] = data.particle_type.astype(np.int32)
            for key, value in fields.items():
                cloud.point_data[key] = value[t]
            frame = f"{name}/frame_{t:05d}.vtp"
            cloud.save(staging / frame)
            entries.append(f'    <DataSet timestep="{t * dt:.9g}" part="0" file={quoteattr(frame)}/>')
        (staging / f"{name}.pvd").write_text(
            '<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n  <Collection>\n'
            + "\n".join(entries) + "\n  </Collection>\n</VTKFile>\n")
    return out / f"{name}.pvd"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m viz.export", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a rollout .h5 (with ground_truth) or a dataset split .h5")
    parser.add_argument("--vtk", type=Path, required=True, help="output folder (new, or empty)")
    parser.add_argument("--trajectory", type=int, default=0, help="trajectory index in the file (default 0)")
    args = parser.parse_args(argv)
    try:
        index = export(args.file, args.vtk, args.trajectory)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {index}")


if __name__ == "__main__":
    main()
