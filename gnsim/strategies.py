"""Training strategies: the noise on the inputs, and pushforward (as LagrangeBench's `strats.py`).

Noise is a random walk on the input velocities (GNS paper, section 4 "Training noise"). The model is trained on inputs corrupted the way its own rollouts will be, so that it learns to
correct accumulated error. The std is fixed at the *last* input velocity: with C velocities each
step adds N(0, (std / sqrt(C))^2) and the cumulative sum reaches std at the last one. Positions
integrate that velocity noise with dt = 1, the first input position stays clean.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from gnsim.domain import KINEMATIC_PARTICLE


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


@dataclass(frozen=True)
class TrainingNoise:
    """The noise strategy of a run: `add_training_noise` with its settings, in one picklable piece."""

    std: float
    correct_position: bool = False
    velocity_correction: float = 1.0

    def __call__(self, position_sequence: torch.Tensor, next_position: torch.Tensor,
                 particle_type: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.std <= 0:
            return position_sequence, next_position
        return add_training_noise(position_sequence, next_position, particle_type, self.std, generator,
                                  self.correct_position, self.velocity_correction)


def relative_noise_std(relative: float, metadata: dict) -> float:
    """The noise std that is `relative` times the data's acceleration std (mean over axes).

    The paper's 6.7e-4 is ~8.7x WaterDrop's acceleration std (6.7e-5 / 8.7e-5 m per frame^2) and
    ~0.5x its velocity std: a noise std means something only against the data's own motion.
    """
    return float(relative * torch.as_tensor(metadata["acc_std"], dtype=torch.float64).mean())


class PushforwardSchedule:
    """How many steps the model unrolls, without gradient, before the step it is trained on.

    Pushforward (Brandstetter et al. 2022, as LagrangeBench's `train/strats.py` uses it): the model
    learns from inputs its own predictions made, the errors a rollout meets. Unroll k becomes
    available at step `unlock_steps[k]` and is drawn with weight `weights[k]` among those available
    (LagrangeBench: 0, 1, 2, 3 steps, from steps 0 / 20k / 300k / 400k, weights 18 : 2 : 1 : 1).
    """

    def __init__(self, unlock_steps: list[int], weights: list[float]):
        if len(unlock_steps) != len(weights) or not unlock_steps or unlock_steps[0] != 0:
            raise ValueError("pushforward_unlock_steps must start at 0 and have one entry per pushforward_weights")
        if any(b < a for a, b in itertools.pairwise(unlock_steps)) or min(weights) <= 0:
            raise ValueError("pushforward_unlock_steps must not decrease and pushforward_weights must be positive")
        self.unlock_steps, self.weights = list(unlock_steps), torch.tensor(weights, dtype=torch.float64)

    @property
    def max_unroll(self) -> int:
        return len(self.unlock_steps) - 1

    def draw(self, step: int, generator: torch.Generator) -> int:
        """The unroll of training step `step` (the same on every rank: `generator` is seeded by step)."""
        available = sum(unlock <= step for unlock in self.unlock_steps)
        return int(torch.multinomial(self.weights[:available], 1, generator=generator))


def pushforward_target(truth: torch.Tensor, position_sequence: torch.Tensor, unroll: int,
                       correct_position: bool, displacement) -> torch.Tensor:
    """The target of the step after `unroll` predicted ones: true frames `truth` [N, K + 1, D].

    As `add_training_noise`'s: the true next position with `correct_position`, else the true next
    velocity taken from the (predicted) last input position.
    """
    if correct_position:
        return truth[:, unroll]
    return position_sequence[:, -1] + displacement(truth[:, unroll], truth[:, unroll - 1])
