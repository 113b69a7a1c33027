"""Autoregressive rollout: the model's own predictions become its next inputs.

As learning_to_simulate's `rollout`: the first `input_frames` positions come from the ground
truth; every later frame is predicted from the previous `input_frames`, except kinematic
(boundary) particles, whose positions are always taken from the ground truth.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from gnsim.dataset import KINEMATIC_PARTICLE
from gnsim.learned_simulator import LearnedSimulator

# Edges per scene, as a multiple of the first frame's edges or particles (the larger), past
# which a rollout has collapsed: on the small `water` data the simulator's graphs never grow
# past 1.06x their frame-5 edges (every 5th frame of the train and test trajectories, r = 0.05 m).
COLLAPSE_EDGE_FACTOR = 10


@torch.inference_mode()
def rollout(
    simulator: LearnedSimulator,
    position: torch.Tensor,
    particle_type: torch.Tensor,
    steps: int | None = None,
    batch: torch.Tensor | None = None,
    material: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Roll out `steps` frames from ground truth `position` [T, N, D]; returns [input_frames + steps, N, D].

    The first `input_frames` output frames are the ground truth's, so that output frame t lines
    up with `position[t]`. `steps` defaults to the rest of the trajectory; frames beyond T need
    no ground truth unless there are kinematic particles. `batch` [N] (PyG's graph ids, sorted)
    rolls several scenes out at once, concatenated along N.

    A scene whose graph grows past `COLLAPSE_EDGE_FACTOR` times its first frame's edges (and
    its particle count) has collapsed: its particles have piled onto one another, and each
    further step would cost more and mean nothing. Its particles are NaN from that frame on,
    which the metrics report as a blow-up, and the other scenes roll on.
    """
    input_frames = simulator.config.input_frames
    if position.dim() != 3 or position.shape[0] < input_frames:
        raise ValueError(
            f"rollout needs position [T >= {input_frames}, N, D], got {list(position.shape)}"
        )
    steps = position.shape[0] - input_frames if steps is None else steps
    kinematic = particle_type == KINEMATIC_PARTICLE
    if bool(kinematic.any()) and position.shape[0] < input_frames + steps:
        raise ValueError(
            f"kinematic particles need ground truth for all {input_frames + steps} frames, got {position.shape[0]}"
        )
    device = next(simulator.parameters()).device
    position = position.to(device)
    particle_type, kinematic = particle_type.to(device), kinematic.to(device)
    batch = None if batch is None else batch.to(device)
    material = None if material is None else material.to(device)

    window = position[:input_frames].transpose(0, 1)  # [N, C, D], particle-major as the model
    scene = batch if batch is not None else torch.zeros(len(particle_type), dtype=torch.long, device=device)
    scenes = int(scene.max()) + 1 if len(scene) else 0
    edge_limit = None
    index = torch.arange(len(particle_type), device=device)  # the particles still rolling out
    predictions = []
    for t in tqdm(
        range(input_frames, input_frames + steps),
        desc="rollout",
        disable=not progress or None,
        leave=False,
    ):
        next_position = torch.full_like(position[0], float("nan"))
        if len(index):
            edge_index = simulator.connectivity(window[:, -1], batch)
            edges = torch.bincount(scene[edge_index[1]], minlength=scenes)
            if edge_limit is None:
                particles = torch.bincount(scene, minlength=scenes)
                edge_limit = COLLAPSE_EDGE_FACTOR * torch.maximum(edges, particles)
            if bool((edges > edge_limit).any()):  # collapsed scenes drop out, with their graphs
                keep = (edges <= edge_limit)[scene]
                index, window, particle_type, scene = index[keep], window[keep], particle_type[keep], scene[keep]
                batch = None if batch is None else batch[keep]
                material = None if material is None else material[keep]
                edge_index = simulator.connectivity(window[:, -1], batch)
            next_position[index] = simulator.predict_position(
                window, particle_type, edge_index, batch=batch, material=material
            )
        if bool(kinematic.any()):
            next_position = torch.where(kinematic[:, None], position[t], next_position)
        predictions.append(next_position)
        window = torch.cat([window[:, 1:], next_position[index][:, None]], dim=1)
    predicted = torch.stack(predictions) if predictions else position[:0]
    return torch.cat([position[:input_frames], predicted])
