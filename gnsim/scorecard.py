"""The scorecard: a learned simulator and both baselines rolled out on the same trajectories and
scored on the same rows (see `gnsim.metrics.SCORECARD`). `training.rollout` prints it for the
test split; validation during training scores the valid split with it.
"""

from __future__ import annotations

from itertools import groupby

import numpy as np
import torch
from tqdm.auto import tqdm

from gnsim.baselines import baseline_predictions
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig, material_per_particle
from gnsim.metrics import aggregate, evaluate_rollout
from gnsim.rollout import rollout


@torch.inference_mode()
def one_step_predictions(simulator: LearnedSimulator, position: torch.Tensor, particle_type: torch.Tensor,
                         material: torch.Tensor | None = None, windows_per_batch: int = 16) -> torch.Tensor:
    """The model's next-frame prediction from every true history window: [T - C, N, D]."""
    device = next(simulator.parameters()).device
    input_frames = simulator.config.input_frames
    position, particle_type = position.to(device), particle_type.to(device)
    starts = list(range(len(position) - input_frames))
    predictions = []
    for chunk in (starts[i : i + windows_per_batch] for i in range(0, len(starts), windows_per_batch)):
        # Several windows of one trajectory as the graphs of one batch.
        windows = torch.cat([position[s : s + input_frames].transpose(0, 1) for s in chunk])
        batch = torch.arange(len(chunk), device=device).repeat_interleave(position.shape[1])
        targets = torch.cat([position[s + input_frames] for s in chunk])
        predicted = simulator.predict_position(
            windows, particle_type.repeat(len(chunk)), batch=batch, kinematic_position=targets,
            material=None if material is None else material.to(device).repeat(len(chunk), 1))
        predictions.append(predicted.reshape(len(chunk), *position.shape[1:]))
    return torch.cat(predictions)


def rollouts(simulator: LearnedSimulator, items: list[dict], batch_size: int = 4,
             progress: bool = False) -> list[np.ndarray]:
    """Each item's whole rollout [T, N, D]; trajectories of equal length roll out as one batch.

    An item is a dict of `position` [T, N, D] and `particle_type` [N] tensors, and `material`
    [N, P] when the model takes material features."""
    predicted: list[np.ndarray | None] = [None] * len(items)
    order = sorted(range(len(items)), key=lambda k: len(items[k]["position"]))
    groups = [list(group) for _, group in groupby(order, key=lambda k: len(items[k]["position"]))]
    chunks = [group[i : i + batch_size] for group in groups for i in range(0, len(group), batch_size)]
    for chunk in tqdm(chunks, desc="rollout", disable=None if progress else True):
        position = torch.cat([items[k]["position"] for k in chunk], dim=1)
        particle_type = torch.cat([items[k]["particle_type"] for k in chunk])
        sizes = torch.tensor([len(items[k]["particle_type"]) for k in chunk])
        batch = torch.arange(len(chunk)).repeat_interleave(sizes)
        material = None
        if items[chunk[0]].get("material") is not None:
            material = torch.cat([items[k]["material"] for k in chunk])
        output = rollout(simulator, position, particle_type, batch=batch, material=material,
                         progress=progress).cpu().numpy()
        for k, part in zip(chunk, np.split(output, np.cumsum(sizes.numpy())[:-1], axis=1)):
            predicted[k] = part
    return predicted


def scorecard_item(trajectory: dict, config: SimulatorConfig, frames: int | None = None) -> dict:
    """A dataset trajectory as `score` takes it: its first `frames` positions (all by default),
    particle types, and material parameters when the model reads them (ValueError if missing)."""
    item = {"position": trajectory["position"][:frames], "particle_type": trajectory["particle_type"]}
    material = material_per_particle(trajectory, config)
    return item if material is None else {**item, "material": material}


def score(simulator: LearnedSimulator, items: list[dict], metadata: dict, batch_size: int = 4,
          progress: bool = False) -> tuple[dict[str, list[dict]], list[np.ndarray]]:
    """Per method (model, constant velocity, constant velocity plus gravity), the metrics of each
    trajectory of `items` (as `rollouts` takes them); and the model's rollouts. The baselines are kept in the box when the model is (`hard_walls`)."""
    input_frames = simulator.config.input_frames
    predicted = rollouts(simulator, items, batch_size, progress)
    per_method: dict[str, list[dict]] = {}
    for k in tqdm(range(len(items)), desc="metrics", disable=None if progress else True):
        truth = items[k]["position"].numpy()
        particle_type = items[k]["particle_type"].numpy()
        one_step = one_step_predictions(simulator, items[k]["position"], items[k]["particle_type"],
                                        items[k].get("material")).cpu().numpy()
        runs = {"model": (predicted[k], one_step),
                **baseline_predictions(truth, particle_type, metadata, input_frames, simulator.config.hard_walls)}
        for method, (trajectory, one_step_trajectory) in runs.items():
            scores = evaluate_rollout(trajectory, truth, particle_type, metadata,
                                      one_step=one_step_trajectory, input_frames=input_frames)
            per_method.setdefault(method, []).append({"trajectory": k, **scores})
    return per_method, predicted


def aggregates(per_method: dict[str, list[dict]]) -> dict[str, dict]:
    """Each method's mean metrics over its trajectories."""
    return {method: aggregate(results) for method, results in per_method.items()}
