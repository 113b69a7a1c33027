"""What both solvers' scenes share: the errors, and checks of a scene's values and sizes.

Below `scene.py` (MPM) and `sph_scene.py` (SPH), so neither imports the other's module for them.
"""

from __future__ import annotations

import difflib
import math

import numpy as np

from gnsim.limits import too_big


class SceneError(ValueError):
    """A scene is malformed; the message names the offending key."""


class SimulationError(RuntimeError):
    """The simulation went unstable; the message names the frame and the likely cause."""


def check_lattice(counts: list[int], dim: int) -> None:
    """The lattice's coordinates, their stack and the owner and mask arrays, in float64."""
    check_memory("scene.particle_spacing", "the particle lattice", math.prod(counts) * (2 * dim + 2) * 8)


def check_trajectory(frames: int, particles: int, dim: int) -> None:
    """Positions [frames, particles, dim] float32."""
    check_memory("scene.frames", f"the trajectory of {particles} particles", frames * particles * dim * 4)


def check_memory(where: str, what: str, size: float) -> None:
    """Refuse, before allocating, what would take more than half of this machine's memory."""
    reason = too_big(size)
    if reason:
        raise SceneError(f"{where}: {what} {reason}")


def known_keys(data: dict, known: tuple[str, ...], where: str) -> None:
    """A misspelt key would silently be a default (gravity, a block at rest): refuse it."""
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SceneError(f"{where}.{key}: unknown key{hint}")


def number(value, where: str, minimum: float | None = None) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SceneError(f"{where}: must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise SceneError(f"{where}: must be >= {minimum}, got {value!r}")
    return float(value)


def positive(value, where: str) -> float:
    value = number(value, where)
    if value <= 0:
        raise SceneError(f"{where}: must be positive, got {value!r}")
    return value


def vector(value, dim: int, where: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != dim:
        raise SceneError(f"{where}: expected {dim} numbers, got {value!r}")
    return np.array([number(v, f"{where}[{i}]") for i, v in enumerate(value)])


def points(value, count: int, dim: int, where: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise SceneError(f"{where}: expected {count} points of {dim} numbers, got {value!r}")
    return np.stack([vector(p, dim, f"{where}[{i}]") for i, p in enumerate(value)])
