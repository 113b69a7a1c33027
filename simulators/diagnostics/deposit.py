"""Measures of a granular deposit and of two runs of the same scene, on arrays of positions.

A deposit is the last frame of a 2D trajectory resting on a floor at height `floor`:
- its width: the 1st to 99th percentile of x, so that a few strays do not count;
- its height: the 99th percentile of y above the floor;
- its height profile: the highest particle above the floor in each column of width `column`
  (zero where the column is empty), and the area under it, against the material's initial area
  (above 1: the deposit rests looser than it started).
Two runs of one scene compare by their widths and heights, by the distance between their centre-of-
mass paths (frame by frame, averaged) and between their final profiles, relative to `size`.
"""

from __future__ import annotations

import numpy as np

QUANTILES = (1.0, 99.0)  # percentiles that bound a deposit
# A deposit has settled when its 99th-percentile speed over the last frame is below this (m/s):
# 5% of the speed of a fall through one 0.2 m cube, sqrt(2 g 0.2) = 2 m/s.
SETTLED_SPEED = 0.1


def deposit_width(x: np.ndarray) -> float:
    """1st to 99th percentile of x (m) of positions [N, 2]."""
    low, high = np.percentile(x[:, 0], QUANTILES)
    return float(high - low)


def deposit_height(x: np.ndarray, floor: float) -> float:
    """99th percentile of y above the floor (m) of positions [N, 2]."""
    return float(np.percentile(x[:, 1], QUANTILES[1]) - floor)


def height_profile(x: np.ndarray, floor: float, left: float, right: float, column: float) -> np.ndarray:
    """Highest particle above the floor in each column of width `column` from `left` to `right` (m)."""
    count = int(np.ceil((right - left) / column - 1e-9))
    index = np.clip(((x[:, 0] - left) / column).astype(int), 0, count - 1)
    profile = np.zeros(count)
    np.maximum.at(profile, index, np.maximum(x[:, 1] - floor, 0.0))
    return profile


def final_speed(run: np.ndarray, frame_dt: float) -> float:
    """99th percentile of the particles' speeds over the last frame (m/s) of positions [T, N, D]."""
    return float(np.percentile(np.linalg.norm(run[-1] - run[-2], axis=1), QUANTILES[1]) / frame_dt)


def compare(ours: np.ndarray, theirs: np.ndarray, *, floor: float, left: float, right: float,
            column: float, size: float, initial_area: float, frame_dt: float) -> dict[str, float]:
    """Widths, heights, profile areas / initial area, final speeds, and the errors of `ours`
    [T, N, 2] against `theirs` [T, M, 2] (same frames; N and M may differ): relative widths and
    heights, the mean centre-of-mass distance over the frames / size, the mean profile distance / size."""
    if ours.shape[0] != theirs.shape[0] or ours.shape[2] != 2 or theirs.shape[2] != 2:
        raise ValueError(f"the runs need the same frames of 2D positions, got {ours.shape} and {theirs.shape}")
    row = {}
    for name, run in (("ours", ours), ("theirs", theirs)):
        row[f"width_{name}"] = deposit_width(run[-1])
        row[f"height_{name}"] = deposit_height(run[-1], floor)
        row[f"profile_{name}"] = height_profile(run[-1], floor, left, right, column)
        row[f"bulking_{name}"] = float(row[f"profile_{name}"].sum() * column / initial_area)
        row[f"final_speed_{name}"] = final_speed(run, frame_dt)
    row["width_error"] = row["width_ours"] / row["width_theirs"] - 1
    row["height_error"] = row["height_ours"] / row["height_theirs"] - 1
    path = np.linalg.norm(ours.mean(axis=1) - theirs.mean(axis=1), axis=1)
    row["com_path_error"] = float(path.mean() / size)
    covered = (row["profile_ours"] > 0) | (row["profile_theirs"] > 0)
    row["profile_distance"] = float(np.abs(row["profile_ours"] - row["profile_theirs"])[covered].mean() / size)
    return row
