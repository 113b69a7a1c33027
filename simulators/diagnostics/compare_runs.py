"""Our sand against taichi_mpm's, scene by scene.

python -m simulators.diagnostics.compare_runs OURS THEIRS [--figure PNG] [--json PATH]
  OURS: a dataset from `python -m simulators.generate --scene-from taichi_mpm THEIRS --out OURS`;
  THEIRS: the folder of their runs, each input `inputs_2d_K.json` beside its `trajectoryK.npz`.
  Prints one markdown row per scene (final width and height, ours and theirs, their errors, the
  deposits' areas over the initial one, the centre-of-mass path error and the profile distance,
  both relative to the cube size) and the means; draws both final profiles of every scene.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from gnsim.atomic import replacing, write_json_atomic
from gnsim.dataset import DatasetError, read_metadata, split_file
from simulators.diagnostics.deposit import SETTLED_SPEED
from simulators.scene import SceneError
from simulators.taichi_scene import (
    compare_with_taichi,
    read_taichi_trajectory,
    taichi_trajectory_path,
)

ERRORS = ("width_error", "height_error", "com_path_error", "profile_distance")


def compare_runs(ours: str | Path, theirs: str | Path) -> list[dict]:
    """One row per scene of our dataset `ours`, against its trajectory in the folder `theirs`."""
    metadata = read_metadata(ours)
    if "taichi_mpm_inputs" not in metadata:
        raise DatasetError(f"{ours}: not made by `simulators.generate --scene-from taichi_mpm` "
                           "(its metadata names no taichi_mpm_inputs)")
    runs = split_file(ours, "train", metadata)
    rows = []
    for k, (input_path, scene) in enumerate(zip(metadata["taichi_mpm_inputs"], metadata["scenes"])):
        name = Path(input_path).name
        theirs_path = taichi_trajectory_path(Path(theirs) / name)
        row = compare_with_taichi(scene, runs[k].position, read_taichi_trajectory(theirs_path))
        row |= {"scene": name, "friction_angle": scene["blocks"][0]["params"]["friction_angle"]}
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict[str, float]:
    """Mean and mean absolute error over the scenes, and the ratio of the mean widths and heights;
    the mean errors again over the scenes whose sand has settled in their run (SETTLED_SPEED)."""
    settled = [r for r in rows if r["final_speed_theirs"] < SETTLED_SPEED]
    result = {f"mean_{key}": float(np.mean([r[key] for r in rows])) for key in ERRORS}
    result |= {f"settled_mean_{key}": float(np.mean([r[key] for r in settled])) if settled else float("nan")
               for key in ERRORS}
    result["settled_scenes"] = len(settled)
    result |= {f"mean_abs_{key}": float(np.mean([abs(r[key]) for r in rows])) for key in ERRORS[:2]}
    for key in ("width", "height", "bulking"):
        result[f"mean_{key}_ours"] = float(np.mean([r[f"{key}_ours"] for r in rows]))
        result[f"mean_{key}_theirs"] = float(np.mean([r[f"{key}_theirs"] for r in rows]))
    result["mean_height_ratio"] = result["mean_height_ours"] / result["mean_height_theirs"] - 1
    result["mean_width_ratio"] = result["mean_width_ours"] / result["mean_width_theirs"] - 1
    result["median_height_error"] = float(np.median([r["height_error"] for r in rows]))
    return result


def table(rows: list[dict], means: dict[str, float]) -> str:
    """Markdown: a row per scene, then the means."""
    lines = [("| scene | phi | width ours / theirs (m) | error | height ours / theirs (m) | error | "
              "area / initial, ours / theirs | CoM path / size | profile distance / size | final speed, theirs (m/s) |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['scene']} | {r['friction_angle']:g} | {r['width_ours']:.3f} / {r['width_theirs']:.3f} | "
                     f"{r['width_error']:+.1%} | {r['height_ours']:.3f} / {r['height_theirs']:.3f} | "
                     f"{r['height_error']:+.1%} | {r['bulking_ours']:.2f} / {r['bulking_theirs']:.2f} | "
                     f"{r['com_path_error']:.1%} | {r['profile_distance']:.1%} | {r['final_speed_theirs']:.2f} |")
    m = means
    lines.append(f"| mean of {len(rows)} | | {m['mean_width_ours']:.3f} / {m['mean_width_theirs']:.3f} | "
                 f"{m['mean_width_error']:+.1%} (abs {m['mean_abs_width_error']:.1%}) | "
                 f"{m['mean_height_ours']:.3f} / {m['mean_height_theirs']:.3f} | "
                 f"{m['mean_height_error']:+.1%} (abs {m['mean_abs_height_error']:.1%}, median "
                 f"{m['median_height_error']:+.1%}) | {m['mean_bulking_ours']:.2f} / {m['mean_bulking_theirs']:.2f} | "
                 f"{m['mean_com_path_error']:.1%} | {m['mean_profile_distance']:.1%} | |")
    lines.append(f"| mean of the {m['settled_scenes']} settled (theirs < {SETTLED_SPEED:g} m/s) | | | "
                 f"{m['settled_mean_width_error']:+.1%} | | {m['settled_mean_height_error']:+.1%} | | "
                 f"{m['settled_mean_com_path_error']:.1%} | {m['settled_mean_profile_distance']:.1%} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.diagnostics.compare_runs",
                                     description="Compare our re-runs of taichi_mpm scenes with their trajectories.")
    parser.add_argument("ours", help="dataset from `simulators.generate --scene-from taichi_mpm`")
    parser.add_argument("theirs", help="folder of their inputs_2d_K.json and trajectoryK.npz")
    parser.add_argument("--figure", help="write both final height profiles of every scene to this PNG")
    parser.add_argument("--json", help="write the rows and means to this JSON file")
    args = parser.parse_args(argv)
    try:
        rows = compare_runs(args.ours, args.theirs)
        means = summary(rows)
        print(table(rows, means))
        if args.json:
            plain = [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in r.items()} for r in rows]
            write_json_atomic(Path(args.json), {"rows": plain, "means": means})
        if args.figure:
            from simulators.diagnostics.profile_figure import draw_profiles

            with replacing(Path(args.figure), ".png") as temporary:
                draw_profiles(rows, temporary)
        return 0
    except (DatasetError, SceneError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
