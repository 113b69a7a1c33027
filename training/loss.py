"""The training loss of the GNS: one-step error of normalised accelerations."""

from __future__ import annotations

import torch
import torch.distributed as dist

from gnsim.learned_simulator import non_kinematic_mask


def one_step_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    particle_type: torch.Tensor,
    distributed: bool = False,
) -> torch.Tensor:
    """Squared error of normalised accelerations, summed over axes, averaged over predicted particles.

    Under DDP the average is over the global batch: each rank divides by the global count / world
    size, so DDP's gradient mean equals the one-process gradient of the same global batch.
    """
    mask = non_kinematic_mask(particle_type)
    squared_error = ((predicted - target) ** 2).sum(dim=-1)
    count = mask.sum().to(squared_error.dtype)
    if distributed:
        count = count.clone()
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    total = torch.where(mask, squared_error, torch.zeros_like(squared_error)).sum()
    return total / count.clamp(min=1)
