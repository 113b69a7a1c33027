"""A dataset's periodic box: minimum-image differences and wrapping, for metrics and baselines.

Positions in a periodic dataset (`periodic_boundary_conditions` in the metadata, e.g. the Taylor-
Green vortex) are stored wrapped into `bounds`, so a particle that crosses a side jumps by the
box's length. Every difference of positions (an error, a velocity) is taken as the minimum image,
as LagrangeBench's metrics take it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PeriodicBox:
    lower: np.ndarray  # [D] metres
    length: np.ndarray  # [D] metres
    axes: np.ndarray  # [D] bool, True where the axis is periodic

    @classmethod
    def from_metadata(cls, metadata: dict) -> PeriodicBox | None:
        """The box of a dataset's metadata, or None when no axis is periodic."""
        periodic = metadata.get("periodic_boundary_conditions")
        if not periodic or not any(periodic):
            return None
        bounds = np.asarray(metadata["bounds"], dtype=np.float64)
        return cls(bounds[:, 0], bounds[:, 1] - bounds[:, 0], np.asarray(periodic, dtype=bool))

    def difference(self, a, b):
        """a - b, minimum image on the periodic axes (numpy arrays or torch tensors, [..., D])."""
        d = a - b
        if isinstance(d, torch.Tensor):
            length = torch.as_tensor(self.length, dtype=d.dtype, device=d.device)
            axes = torch.as_tensor(self.axes, device=d.device)
            return torch.where(axes, d - length * torch.round(d / length), d)
        return np.where(self.axes, d - self.length * np.round(d / self.length), d)

    def wrap(self, x: np.ndarray) -> np.ndarray:
        """Positions [..., D] wrapped into [lower, lower + length) on the periodic axes."""
        return np.where(self.axes, self.lower + np.mod(x - self.lower, self.length), x)

    def kd_boxsize(self) -> np.ndarray:
        """scipy cKDTree's `boxsize` for positions shifted by -lower: the length where periodic,
        0 (no wrapping) elsewhere."""
        return np.where(self.axes, self.length, 0.0)


def difference(a, b, box: PeriodicBox | None):
    """a - b, the minimum image when `box` is a periodic box (numpy arrays or torch tensors)."""
    return a - b if box is None else box.difference(a, b)
