"""Small real datasets for the model and training tests: a block of soft spheres falling on a floor.

A 2D discrete-element simulation (linear spring-dashpot contacts, gravity, walls), integrated with
symplectic Euler at 10 substeps per frame, with a fixed row of kinematic boundary particles
(type 3) under a block of water-typed particles (type 5). Tiny, but real Newtonian dynamics
with particle interactions, written through DatasetWriter like every other dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gnsim import DatasetWriter

# Real data no one here wrote, in the shared/ folder beside the checkout (and CI's clone).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def needs_shared(name: str):
    """Skip a test, naming the folder, where shared/data/NAME is absent (a clone elsewhere)."""
    return pytest.mark.skipif(not (SHARED_DATA / name).is_dir(), reason=f"{SHARED_DATA / name} is absent")


BOUNDS = [[0.0, 1.0], [0.0, 1.0]]
SPACING = 0.05
CONNECTIVITY_RADIUS = 0.085  # not a multiple of the spacing: no pair sits on the cut-off
FRAME_DT = 0.01


def falling_block(
    seed: int, frames: int = 30, columns: int = 7, rows: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Positions [frames, N, 2] and particle types [N] of one trajectory."""
    rng = np.random.default_rng(seed)
    corner = np.array([0.2 + 0.3 * rng.random(), 0.3 + 0.15 * rng.random()])
    grid = np.stack(np.meshgrid(np.arange(columns), np.arange(rows), indexing="ij"), -1).reshape(
        -1, 2
    )
    fluid = corner + grid * SPACING + rng.normal(0, 0.004, (len(grid), 2))
    floor = np.stack([np.arange(0.05, 0.96, SPACING), np.full(19, 0.08)], -1)
    x = np.concatenate([fluid, floor])
    particle_type = np.array([5] * len(fluid) + [3] * len(floor))
    moving = particle_type != 3
    v = np.zeros_like(x)
    v[moving] = rng.normal(0, 0.2, (moving.sum(), 2))
    stiffness, damping, gravity, substeps = 3e4, 20.0, np.array([0.0, -9.81]), 10
    dt = FRAME_DT / substeps
    lower, upper = np.array(BOUNDS)[:, 0] + 0.02, np.array(BOUNDS)[:, 1] - 0.02
    out = [x.copy()]
    for _ in range(frames - 1):
        for _ in range(substeps):
            d = x[:, None, :] - x[None, :, :]
            distance = np.linalg.norm(d, axis=-1) + np.eye(len(x))
            overlap = np.clip(SPACING - distance, 0, None)
            normal = d / distance[..., None]
            relative_speed = ((v[:, None, :] - v[None, :, :]) * normal).sum(-1)
            contact = (overlap > 0) * (stiffness * overlap - damping * relative_speed)
            force = (contact[..., None] * normal).sum(1) + gravity
            force += stiffness * (np.clip(lower - x, 0, None) - np.clip(x - upper, 0, None))
            v[moving] += dt * force[moving]
            x[moving] += dt * v[moving]
        out.append(x.copy())
    return np.asarray(out, dtype=np.float32), particle_type


def write_dataset(
    folder, train: int = 3, valid: int = 1, frames: int = 30, seed: int = 0, **metadata
) -> str:
    with DatasetWriter(
        folder,
        dim=2,
        dt=FRAME_DT,
        bounds=BOUNDS,
        connectivity_radius=CONNECTIVITY_RADIUS,
        metadata={"simulator": "tests.conftest.falling_block", "seed": seed, **metadata},
    ) as writer:
        for k in range(train):
            writer.add("train", *falling_block(seed + k, frames))
        for k in range(valid):
            writer.add("valid", *falling_block(seed + 1000 + k, frames))
    return str(folder)


@pytest.fixture(scope="session")
def falling_blocks(tmp_path_factory) -> str:
    """A dataset folder: 3 train and 1 valid trajectories of 30 frames, 35 + 19 particles."""
    return write_dataset(tmp_path_factory.mktemp("falling_blocks"))


@pytest.fixture
def single_thread():
    """Run torch on one thread: the tests' graphs have ~50 nodes, where a second OpenMP thread only
    adds synchronisation, and on a loaded machine its spin-waits made the training tests ~15x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
