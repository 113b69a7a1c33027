"""Training noise: a random walk on the input velocities (GNS paper, section 4 "Training noise").

The model is trained on inputs corrupted the way its own rollouts will be, so that it learns to
correct accumulated error. The std is fixed at the *last* input velocity: with C velocities each
step adds N(0, (std / sqrt(C))^2) and the cumulative sum reaches std at the last one. Positions
integrate that velocity noise with dt = 1, the first input position stays clean.
"""

from __future__ import annotations

import torch

from gnsim.dataset import KINEMATIC_PARTICLE


def random_walk_noise(
    position_sequence: torch.Tensor,
    noise_std_last_step: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Position noise [N, C, D] for inputs [N, C, D] whose velocity noise at the last step has std `noise_std_last_step`."""
    num_particles, num_positions, dim = position_sequence.shape
    num_velocities = num_positions - 1
    velocity_noise = torch.randn(
        (num_particles, num_velocities, dim),
        generator=generator,
        dtype=position_sequence.dtype,
        device=position_sequence.device,
    ) * (noise_std_last_step / num_velocities**0.5)
    velocity_noise = velocity_noise.cumsum(dim=1)  # the random walk
    position_noise = velocity_noise.cumsum(dim=1)  # Euler, dt = 1
    return torch.cat([torch.zeros_like(position_noise[:, :1]), position_noise], dim=1)


def add_training_noise(
    position_sequence: torch.Tensor,
    next_position: torch.Tensor,
    particle_type: torch.Tensor,
    noise_std: float,
    generator: torch.Generator | None = None,
    correct_position: bool = False,
    velocity_correction: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy inputs [N, C, D] and the target position [N, D].

    Kinematic particles get no noise (their positions are prescribed). By default (the paper) the
    target is shifted by the noise of the last input position, so the target velocity
    `target - noisy_last` equals the true next velocity: the loss teaches the model to undo the
    velocity noise, not to predict it (learning_to_simulate's
    `get_predicted_and_target_normalized_accelerations`). With `correct_position` the target is
    the true next position: the model also learns to move displaced particles back, the
    restoring response that keeps its rollouts from sinking into walls and compressing water.
    With `velocity_correction` < 1 the target keeps the rest of the last velocity's noise: the
    model learns to undo only that fraction of a velocity error per step.
    """
    noise = random_walk_noise(position_sequence, noise_std, generator)
    noise = noise * (particle_type != KINEMATIC_PARTICLE).to(noise.dtype)[:, None, None]
    target = next_position if correct_position else next_position + noise[:, -1]
    target = target + (1.0 - velocity_correction) * (noise[:, -1] - noise[:, -2])  # + 0 at 1
    return position_sequence + noise, target
