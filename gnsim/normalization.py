"""Normalisation statistics of velocities and accelerations, from the dataset metadata.

As in learning_to_simulate's `train.py`, the training noise std is combined with each dataset
std in quadrature, sqrt(std^2 + noise_std^2): the noisy inputs and noise-corrected targets the
model sees spread wider than the clean data, and a small dataset std (a nearly still axis) is
kept away from zero.
"""

from __future__ import annotations

import torch
from torch import nn


class Normalizer(nn.Module):
    """x -> (x - mean) / std and back, per axis; mean and std are buffers saved in checkpoints."""

    def __init__(self, mean: list[float], std: list[float], noise_std: float = 0.0):
        super().__init__()
        # On the CPU even where a model is only counted, on the meta device (gnsim.checkpoint).
        mean_tensor = torch.as_tensor(mean, dtype=torch.float64, device="cpu")
        std_tensor = torch.sqrt(torch.as_tensor(std, dtype=torch.float64, device="cpu") ** 2 + noise_std**2)
        if not bool((std_tensor > 0).all()):
            raise ValueError(f"normalisation std must be positive, got {std_tensor.tolist()}")
        self.register_buffer("mean", mean_tensor.float())
        self.register_buffer("std", std_tensor.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean
