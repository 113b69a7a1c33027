"""Particle positions as VTK wants them: 3D float32 points (2D data gets z = 0)."""

from __future__ import annotations

import numpy as np


def as_3d(array: np.ndarray) -> np.ndarray:
    """[..., 2 or 3] -> contiguous float32 [..., 3]."""
    if array.shape[-1] == 3:
        return np.ascontiguousarray(array, dtype=np.float32)
    return np.concatenate([array, np.zeros((*array.shape[:-1], 1))], axis=-1).astype(np.float32)
