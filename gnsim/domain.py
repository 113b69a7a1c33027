"""The box a dataset describes, read once from its metadata: bounds and walls, periodic axes,
gravity, and the particle types (which of them are kinematic).

Every caller asks here: the statistics a writer computes, neighbour lists, the learned simulator,
the baselines, the metrics and the diagnostics. Positions in a periodic dataset (LagrangeBench's
`periodic_boundary_conditions`, e.g. the Taylor-Green vortex) are stored wrapped into `bounds`,
so a particle crossing a side jumps by the box's length: every difference of positions (an error,
a velocity, an edge) is the minimum image, as LagrangeBench's metrics take it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Particle type ids of the GNS datasets (learning_to_simulate).
PARTICLE_TYPES = {0: "rigid", 3: "boundary", 5: "water", 6: "sand", 7: "goop"}
KINEMATIC_PARTICLE = 3  # positions prescribed by the data, never predicted


def minimum_image(difference, length, axes):
    """`difference` [..., D] folded into [-length/2, length/2] on `axes` (numpy or torch alike)."""
    if isinstance(difference, torch.Tensor):
        return torch.where(axes, difference - length * torch.round(difference / length), difference)
    return np.where(axes, difference - length * np.round(difference / length), difference)


def wrap(position, lower, length, axes):
    """Positions [..., D] wrapped into [lower, lower + length) on `axes` (numpy or torch alike)."""
    if isinstance(position, torch.Tensor):
        return torch.where(axes, lower + torch.remainder(position - lower, length), position)
    return np.where(axes, lower + np.mod(position - lower, length), position)


@dataclass(frozen=True)
class Domain:
    bounds: np.ndarray  # [D, 2] metres
    periodic: np.ndarray  # [D] bool, True where the axis wraps
    gravity: np.ndarray | None  # [D] m/s², None when the metadata gives none
    dt: float  # s between frames

    @classmethod
    def from_metadata(cls, metadata: dict) -> Domain:
        """The domain of a dataset's metadata; a malformed field is a ValueError naming it."""
        bounds = np.asarray(metadata["bounds"], dtype=np.float64)
        dim = len(bounds)
        periodic = np.asarray(metadata.get("periodic_boundary_conditions", [False] * dim), dtype=bool)
        if periodic.shape != (dim,):
            raise ValueError(f"metadata 'periodic_boundary_conditions' must have {dim} entries, "
                             f"got {metadata['periodic_boundary_conditions']!r}")
        gravity = metadata.get("gravity")  # the one place: the top level, one value per axis
        if gravity is not None:
            gravity = np.asarray(gravity, dtype=np.float64)
            if gravity.shape != (dim,):
                raise ValueError(f"metadata 'gravity' must have {dim} entries, got {metadata['gravity']!r}")
        return cls(bounds, periodic, gravity, float(metadata["dt"]))

    @property
    def dim(self) -> int:
        return len(self.bounds)

    @property
    def lower(self) -> np.ndarray:
        return self.bounds[:, 0]

    @property
    def length(self) -> np.ndarray:
        return self.bounds[:, 1] - self.bounds[:, 0]

    @property
    def is_periodic(self) -> bool:
        return bool(self.periodic.any())

    @property
    def walls(self) -> np.ndarray:
        """[D, 2] lower and upper walls; a periodic axis has none (+-inf)."""
        return np.where(self.periodic[:, None], [-np.inf, np.inf], self.bounds)

    def gravity_per_frame(self) -> np.ndarray | None:
        """Gravity as a per-frame² acceleration [D], g dt², or None when the metadata has none."""
        return None if self.gravity is None else self.gravity * self.dt**2

    def difference(self, a, b):
        """a - b, the minimum image on the periodic axes (numpy arrays or torch tensors, [..., D])."""
        if not self.is_periodic:
            return a - b
        if isinstance(a, torch.Tensor):
            return minimum_image(a - b, torch.as_tensor(self.length, dtype=a.dtype, device=a.device),
                                 torch.as_tensor(self.periodic, device=a.device))
        return minimum_image(a - b, self.length, self.periodic)

    def wrap(self, position: np.ndarray) -> np.ndarray:
        """Positions [..., D] wrapped into the box on the periodic axes."""
        return wrap(position, self.lower, self.length, self.periodic) if self.is_periodic else position

    def kd_boxsize(self) -> np.ndarray:
        """scipy cKDTree's `boxsize` for positions shifted by -lower: the length where periodic,
        0 (no wrapping) elsewhere."""
        return np.where(self.periodic, self.length, 0.0)


def periodic_box(metadata: dict) -> Domain | None:
    """The dataset's domain when some axis is periodic, else None (plain differences everywhere)."""
    domain = Domain.from_metadata(metadata)
    return domain if domain.is_periodic else None


def difference(a, b, box: Domain | None):
    """a - b, the minimum image when `box` is a periodic domain (numpy arrays or torch tensors)."""
    return a - b if box is None else box.difference(a, b)
