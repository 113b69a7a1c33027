"""Both final height profiles of every compared scene, one small panel each (matplotlib, files only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

COLUMNS = 8  # panels per row


def draw_profiles(rows: list[dict], out: Path) -> None:
    """A PNG at `out`: per scene, our final profile and theirs (height above the floor, cm)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    lines = math.ceil(len(rows) / COLUMNS)
    figure, axes = plt.subplots(lines, COLUMNS, figsize=(1.6 * COLUMNS, 1.1 * lines + 0.4), sharex=True,
                                sharey=True, squeeze=False)
    for axis, row in zip(axes.flat, rows):
        x = np.arange(len(row["profile_ours"]))
        axis.step(x, 100 * row["profile_theirs"], where="mid", color="tab:orange", lw=1)
        axis.step(x, 100 * row["profile_ours"], where="mid", color="tab:blue", lw=1)
        axis.set_title(f"{Path(row['scene']).stem.rsplit('_', 1)[-1]}: {row['friction_angle']:g}°", fontsize=7, pad=2)
        axis.tick_params(labelsize=6, length=2)
    for axis in axes.flat[len(rows):]:
        axis.axis("off")
    figure.legend(["taichi_mpm", "ours"], loc="upper right", fontsize=7, ncol=2, frameon=False)
    figure.supxlabel("column (grid cells)", fontsize=7)
    figure.supylabel("final height (cm)", fontsize=7)
    figure.tight_layout(rect=(0.015, 0, 1, 0.97), pad=0.3)  # room for the shared y label
    figure.savefig(out, dpi=80, format="png")
    plt.close(figure)
