"""Physics-free baselines a learned simulator must beat: constant velocity, and it plus gravity.

Both start from the first `input_frames` ground-truth frames, like the learned rollout, step once
per frame with semi-implicit Euler in frame units (velocity = x(t) - x(t-1) per frame), and let
kinematic (type 3) particles follow the ground truth. In a periodic box the velocity is the
minimum-image difference and the positions are wrapped, as the learned simulator's are.
"""

from __future__ import annotations

import numpy as np

from gnsim.dataset import INPUT_FRAMES, KINEMATIC_PARTICLE
from gnsim.domain import Domain, difference, periodic_box


def gravity_per_frame(metadata: dict) -> tuple[np.ndarray, str]:
    """Gravity as a per-frame² acceleration [D], and where it came from.

    The simulator's own constant is the right one: the metadata's `gravity` (`gnsim.domain`
    reads it) times dt². Without it, `acc_mean` (the mean per-frame acceleration of the training
    split) is the only estimate; it is smaller than gravity wherever walls hold the material up.
    """
    gravity = Domain.from_metadata(metadata).gravity_per_frame()
    if gravity is not None:
        return gravity, "gravity"
    return np.asarray(metadata["acc_mean"], dtype=np.float64), "acc_mean"


def constant_acceleration_rollout(position: np.ndarray, particle_type: np.ndarray, acceleration,
                                  input_frames: int = INPUT_FRAMES, walls: np.ndarray | None = None,
                                  box: Domain | None = None) -> np.ndarray:
    """Rollout [T, N, D] from the last input velocity, adding `acceleration` (per frame²) each step.

    With `walls` ([D, 2], `gnsim.domain.Domain.walls`) each new position is clamped into them and the
    velocity is what the clamped step moved, as a model with `hard_walls` is rolled out.
    """
    position = np.asarray(position, dtype=np.float64)
    kinematic = np.asarray(particle_type) == KINEMATIC_PARTICLE
    predicted = position.copy()
    velocity = difference(position[input_frames - 1], position[input_frames - 2], box)
    for t in range(input_frames, len(position)):
        velocity = velocity + acceleration  # semi-implicit Euler: velocity first, then position
        predicted[t] = predicted[t - 1] + velocity
        if box is not None:
            predicted[t] = box.wrap(predicted[t])
        if walls is not None:
            predicted[t] = np.clip(predicted[t], walls[:, 0], walls[:, 1])
            velocity = predicted[t] - predicted[t - 1]
        predicted[t, kinematic] = position[t, kinematic]
    return predicted.astype(np.float32)


def constant_velocity_rollout(position: np.ndarray, particle_type: np.ndarray,
                              input_frames: int = INPUT_FRAMES) -> np.ndarray:
    """Every particle keeps its last input velocity, x(t+1) = x(t) + (x(5) - x(4))."""
    return constant_acceleration_rollout(position, particle_type, 0.0, input_frames)


def constant_velocity_gravity_rollout(position: np.ndarray, particle_type: np.ndarray, metadata: dict,
                                      input_frames: int = INPUT_FRAMES) -> np.ndarray:
    """Free fall from the last input velocity, with gravity from `gravity_per_frame(metadata)`."""
    gravity = gravity_per_frame(metadata)[0]
    return constant_acceleration_rollout(position, particle_type, gravity, input_frames)


def constant_acceleration_one_step(position: np.ndarray, acceleration=0.0,
                                   input_frames: int = INPUT_FRAMES, walls: np.ndarray | None = None,
                                   box: Domain | None = None) -> np.ndarray:
    """One-step predictions [T - input_frames, N, D] of frames input_frames.. from true history."""
    position = np.asarray(position, dtype=np.float64)
    current, previous = position[input_frames - 1:-1], position[input_frames - 2:-2]
    predicted = current + difference(current, previous, box) + acceleration
    if box is not None:
        predicted = box.wrap(predicted)
    if walls is not None:
        predicted = np.clip(predicted, walls[:, 0], walls[:, 1])
    return predicted.astype(np.float32)


def baseline_predictions(position: np.ndarray, particle_type: np.ndarray, metadata: dict,
                         input_frames: int = INPUT_FRAMES, hard_walls: bool = False
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each baseline's rollout [T, N, D] and one-step predictions [T - input_frames, N, D], by name.

    `hard_walls`: the baselines are kept in the box as a model with `hard_walls` is, so that
    the walls, which are not learned, do not count as the model's gain.
    """
    gravity = gravity_per_frame(metadata)[0]
    walls = Domain.from_metadata(metadata).walls if hard_walls else None
    box = periodic_box(metadata)
    return {
        name: (constant_acceleration_rollout(position, particle_type, acceleration, input_frames, walls, box),
               constant_acceleration_one_step(position, acceleration, input_frames, walls, box))
        for name, acceleration in (("constant_velocity", 0.0), ("constant_velocity_gravity", gravity))
    }
