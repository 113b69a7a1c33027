"""Rollout metrics: functions from position arrays [T, N, D] (numpy or torch) to numbers and curves.

Conventions (those of the GNS evaluation, Sanchez-Gonzalez et al. 2020, and of our trainer):
- a mean squared error is averaged over frames, non-kinematic particles and coordinates (metres²);
- kinematic (boundary, type 3) particles are prescribed, so they are left out of every metric;
- frame t of a rollout is compared with frame t of the ground truth; the first `input_frames`
  frames are the given history, so horizon h covers the h predicted frames after them;
- in a periodic box (`box`, a `gnsim.domain.Domain`) every difference of positions, an
  error or a velocity, is the minimum image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from gnsim.dataset import INPUT_FRAMES, KINEMATIC_PARTICLE
from gnsim.domain import Domain, difference, periodic_box

HORIZONS = (1, 5, 10, 20, 100)  # 5 and 20: LagrangeBench's MSE5 and MSE20
# A particle further outside the domain than this fraction of the domain's extent has escaped.
ESCAPE_FRACTION = 0.1
# Sinkhorn's epsilon-scaling ratio: 0.5 (geomloss' default) under-reads large displacements by a
# third against the exact transport cost (POT emd2, 1024 particles); 0.8 reads 93-96% of it.
SINKHORN_SCALING = 0.8


def _as_tensor(array) -> torch.Tensor:
    """float64 tensor on the array's own device: sums over many particles stay exact enough."""
    return torch.as_tensor(array).to(torch.float64)


def _moving(particle_type, count: int, device) -> torch.Tensor:
    """Boolean mask [N] of the particles that are predicted (all when no types are given)."""
    if particle_type is None:
        return torch.ones(count, dtype=torch.bool, device=device)
    return torch.as_tensor(particle_type, device=device) != KINEMATIC_PARTICLE


def position_mse(predicted, target, particle_type=None, box: Domain | None = None) -> np.ndarray:
    """Per-frame MSE [T] of positions over non-kinematic particles and coordinates."""
    predicted, target = _as_tensor(predicted), _as_tensor(target)
    mask = _moving(particle_type, predicted.shape[1], predicted.device)
    return (difference(predicted, target, box)[:, mask] ** 2).mean(dim=(1, 2)).cpu().numpy()


def one_step_mse(predicted, target, particle_type=None, box: Domain | None = None) -> float:
    """MSE of one-step predictions (each made from ground-truth history) against the true frames."""
    return float(np.mean(position_mse(predicted, target, particle_type, box)))


def horizon_mse(frame_mse: np.ndarray, input_frames: int = INPUT_FRAMES,
                horizons: Sequence[int] = HORIZONS) -> dict[str, float | None]:
    """Mean of the per-frame MSE over the first h predicted frames, for each h and the whole rollout.

    A horizon longer than the rollout is None (not silently the whole rollout).
    """
    predicted = np.asarray(frame_mse, dtype=np.float64)[input_frames:]
    result: dict[str, float | None] = {
        f"mse_{h}": float(predicted[:h].mean()) if len(predicted) >= h else None for h in horizons
    }
    result["mse_rollout"] = float(predicted.mean()) if len(predicted) else None
    return result


def kinetic_energy(position, dt: float, particle_type=None, box: Domain | None = None) -> np.ndarray:
    """Kinetic energy [T-1] of the non-kinematic particles, unit mass each: E = sum_i |v_i|^2 / 2.

    Velocities are finite differences v(t + 1/2) = (x(t+1) - x(t)) / dt with the dataset's dt (s).
    """
    position = _as_tensor(position)
    mask = _moving(particle_type, position.shape[1], position.device)
    moving = position[:, mask]
    velocity = difference(moving[1:], moving[:-1], box) / dt
    return (0.5 * (velocity**2).sum(dim=(1, 2))).cpu().numpy()


def kinetic_energy_error(predicted, target, dt: float, particle_type=None,
                         box: Domain | None = None) -> np.ndarray:
    """Absolute kinetic-energy error [T-1] of a rollout over time, |E_predicted - E_true|."""
    energy = kinetic_energy(predicted, dt, particle_type, box)
    return np.abs(energy - kinetic_energy(target, dt, particle_type, box))


def kinetic_energy_relative_error(predicted, target, dt: float, particle_type=None,
                                  start: int = 0, box: Domain | None = None) -> float:
    """The kinetic-energy error relative to the true energy from frame `start` on:
    sum_t |E_predicted - E_true| / sum_t E_true (NaN if the truth is at rest throughout)."""
    energy = kinetic_energy(target, dt, particle_type, box)[start:]
    error = kinetic_energy_error(predicted, target, dt, particle_type, box)[start:]
    total = float(energy.sum())
    return float(error.sum()) / total if total > 0 else math.nan


def nearest_neighbour_spacing(position, particle_type=None, box: Domain | None = None) -> np.ndarray:
    """Per-frame median distance [T] (metres) from each moving particle to its nearest other one.

    The material's structure: a liquid keeps its rest spacing, a spray spreads it, a collapse
    shrinks it. NaN for a frame with non-finite positions or fewer than two particles.
    """
    from scipy.spatial import cKDTree

    position = _as_tensor(position)
    mask = _moving(particle_type, position.shape[1], position.device)
    frames = position[:, mask].cpu().numpy()
    spacing = np.full(len(frames), np.nan)
    for t, x in enumerate(frames):
        if len(x) >= 2 and np.isfinite(x).all():
            tree = cKDTree(x) if box is None else cKDTree(box.wrap(x) - box.lower, boxsize=box.kd_boxsize())
            spacing[t] = float(np.median(tree.query(tree.data, k=2)[0][:, 1]))
    return spacing


def fraction_outside(position, bounds, particle_type=None, margin: float = 0.0) -> np.ndarray:
    """Per-frame fraction [T] of moving particles further than `margin` outside `bounds` ([lo, hi] per axis)."""
    position = _as_tensor(position)
    mask = _moving(particle_type, position.shape[1], position.device)
    bounds = torch.as_tensor(bounds, dtype=torch.float64, device=position.device)
    x = position[:, mask]
    # NaN compares False both ways, so a NaN particle is counted as outside.
    inside = ((x >= bounds[:, 0] - margin) & (x <= bounds[:, 1] + margin)).all(dim=-1)
    if x.shape[1] == 0:
        return np.zeros(len(position))
    return (1.0 - inside.double().mean(dim=1)).cpu().numpy()


def blow_up_frame(position, bounds, particle_type=None,
                  escape_fraction: float = ESCAPE_FRACTION) -> int | None:
    """First frame where a particle is NaN/inf or has escaped the domain; None if the rollout stays sane.

    Escaped: further outside `bounds` than `escape_fraction` of the domain's largest extent
    (0.1 of a 1 m box is several connectivity radii, far beyond a particle leaking past a wall).
    """
    extent = float(np.max(np.diff(np.asarray(bounds, dtype=np.float64), axis=1)))
    outside = fraction_outside(position, bounds, particle_type, margin=escape_fraction * extent)
    frames = np.flatnonzero(outside > 0)
    return int(frames[0]) if len(frames) else None


def sinkhorn_distance(predicted, target, blur: float, particle_type=None,
                      max_particles: int | None = None, seed: int = 0, box: Domain | None = None) -> np.ndarray:
    """Per-frame optimal-transport distance [T] (metres) between predicted and true particle sets.

    The debiased Sinkhorn divergence S_eps (Feydy et al., AISTATS 2019) with cost |x - y|^2 / 2 and
    blur eps^(1/2) = `blur` metres, reported as sqrt(2 S_eps): it is exactly 0 for identical sets
    and exactly |d| for a set translated by d, so it reads as a Wasserstein-2 distance in metres
    that ignores which particle is which. `max_particles` evaluates on one random subset of
    particle indices (the same in both sets, from `seed`) to bound the O(N^2) cost. In a periodic
    `box` the cost takes the minimum-image distance.
    """
    from geomloss import SamplesLoss  # imported here: only this metric needs it

    predicted, target = torch.as_tensor(predicted), torch.as_tensor(target)
    mask = _moving(particle_type, predicted.shape[1], predicted.device)
    index = torch.nonzero(mask).flatten()
    if max_particles is not None and len(index) > max_particles:
        generator = torch.Generator().manual_seed(seed)
        index = index[torch.randperm(len(index), generator=generator)[:max_particles].to(index.device)]
    x = predicted[:, index].to(torch.float32).contiguous()
    y = target[:, index].to(torch.float32).contiguous()
    finite = torch.isfinite(x).flatten(1).all(dim=1).cpu()
    cost = None
    if box is not None:
        def cost(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # [B, N, D], [B, M, D] -> [B, N, M]
            return 0.5 * (box.difference(a[:, :, None, :], b[:, None, :, :]) ** 2).sum(-1)
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=SINKHORN_SCALING, cost=cost, backend="tensorized")
    distance = np.full(len(x), np.inf)
    for t in torch.nonzero(finite).flatten().tolist():  # a frame at a time: memory O(N^2), not O(T N^2)
        divergence = float(loss(x[t], y[t]))
        distance[t] = math.sqrt(2.0 * max(divergence, 0.0))
    return distance


def evaluate_rollout(predicted, target, particle_type, metadata: dict, *, one_step=None,
                     input_frames: int = INPUT_FRAMES, sinkhorn_stride: int = 10,
                     sinkhorn_blur: float | None = None, max_particles: int | None = 1024) -> dict:
    """Every metric of one rollout: scalars and per-frame curves, JSON-ready (non-finite -> None).

    `one_step`: one-step predictions of frames input_frames.. from ground-truth history, if any.
    The Sinkhorn curve is taken every `sinkhorn_stride` predicted frames (it costs O(N^2) each);
    its blur defaults to half the connectivity radius, the scale of one particle spacing.
    """
    dt = float(metadata["dt"])
    bounds = metadata["bounds"]
    box = periodic_box(metadata)
    frame_mse = position_mse(predicted, target, particle_type, box)
    energy_error = kinetic_energy_error(predicted, target, dt, particle_type, box)
    outside = fraction_outside(predicted, bounds, particle_type)
    blur = sinkhorn_blur
    if blur is None:
        blur = 0.5 * float(metadata["default_connectivity_radius"])
    sinkhorn_frames = list(range(input_frames, len(frame_mse), max(sinkhorn_stride, 1)))
    sinkhorn = sinkhorn_distance(torch.as_tensor(predicted)[sinkhorn_frames],
                                 torch.as_tensor(target)[sinkhorn_frames], blur, particle_type,
                                 max_particles=max_particles, box=box)
    blow_up = blow_up_frame(predicted, bounds, particle_type)
    rollout = slice(input_frames, None)
    spacing_ratio = (nearest_neighbour_spacing(predicted, particle_type, box)
                     / nearest_neighbour_spacing(target, particle_type, box))
    result = {
        **horizon_mse(frame_mse, input_frames),
        "one_step_mse": one_step_mse(one_step, torch.as_tensor(target)[input_frames:], particle_type, box)
        if one_step is not None else None,
        "sinkhorn_mean": float(np.mean(sinkhorn)) if len(sinkhorn) else None,
        # energies are between frames t and t+1, so the rollout's start at `input_frames - 1`
        "kinetic_energy_error_mean": float(np.mean(energy_error[input_frames - 1:])),
        "kinetic_energy_relative_error": kinetic_energy_relative_error(
            predicted, target, dt, particle_type, start=input_frames - 1, box=box),
        # structure: how far the median nearest-neighbour spacing strays from the truth's
        "spacing_error_mean": float(np.mean(np.abs(spacing_ratio[rollout] - 1.0))),
        "spacing_ratio_final": float(spacing_ratio[-1]),
        "fraction_outside_mean": float(np.mean(outside[rollout])),
        "fraction_outside_final": float(outside[-1]),
        "blow_up_frame": blow_up,
        "position_mse_over_time": frame_mse.tolist(),
        "kinetic_energy_error_over_time": energy_error.tolist(),
        "fraction_outside_over_time": outside.tolist(),
        "spacing_ratio_over_time": spacing_ratio.tolist(),
        "sinkhorn_frames": sinkhorn_frames,
        "sinkhorn_over_time": sinkhorn.tolist(),
    }
    return _finite_or_none(result)


def aggregate(per_trajectory: Sequence[dict]) -> dict:
    """Mean of each scalar metric over trajectories, and the number of blow-ups.

    A metric that is None for any trajectory (NaN in a blown-up rollout, or a horizon longer than
    the rollout) is None in the aggregate too: averaging only the survivors would flatter a model.
    """
    result: dict = {"trajectories": len(per_trajectory),
                    "blow_ups": sum(r.get("blow_up_frame") is not None for r in per_trajectory)}
    scalars = [key for key, value in (per_trajectory[0] if per_trajectory else {}).items()
               if not isinstance(value, list) and key != "blow_up_frame"]
    for key in scalars:
        values = [r.get(key) for r in per_trajectory]
        result[key] = None if any(v is None for v in values) else float(np.mean(values))
    return result


def _finite_or_none(value):
    """JSON has no NaN or inf: such values become None, recursively."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# The scorecard: every row on which a model must beat both baselines (all errors: lower is better).
SCORECARD = {  # aggregate key -> column heading
    "one_step_mse": "one-step MSE", "mse_1": "MSE@1", "mse_10": "MSE@10", "mse_100": "MSE@100",
    "mse_rollout": "rollout MSE", "sinkhorn_mean": "Sinkhorn (m)",
    "kinetic_energy_relative_error": "|ΔE_kin|/E_kin", "spacing_error_mean": "spacing err",
}
TABLE_COLUMNS = {  # aggregate key -> column heading
    **SCORECARD, "spacing_ratio_final": "spacing@end", "fraction_outside_mean": "outside",
    "blow_ups": "blow-ups",
}


def format_table(aggregates: dict[str, dict]) -> str:
    """A plain-text table, one row per method (model, baselines), one column per scalar metric."""
    def cell(value) -> str:
        if value is None:
            return "-"
        return str(value) if isinstance(value, int) else f"{value:.3g}"

    rows = [["method", *TABLE_COLUMNS.values()]]
    rows += [[name, *(cell(metrics.get(key)) for key in TABLE_COLUMNS)] for name, metrics in aggregates.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(text.ljust(width) if i == 0 else text.rjust(width)
                       for i, (text, width) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def losing_rows(aggregates: dict[str, dict], model: str = "model") -> list[str]:
    """The scorecard rows on which `model` does not beat every other method (undefined counts as lost)."""
    mine = aggregates[model]
    lost = []
    for key in SCORECARD:
        others = [a.get(key) for name, a in aggregates.items() if name != model]
        if mine.get(key) is None or any(other is not None and mine[key] >= other for other in others):
            lost.append(key)
    return lost


def selection_score(aggregates: dict[str, dict], model: str = "model") -> float:
    """How a checkpoint is chosen: the geometric mean over the scorecard rows of the model's
    error over the best baseline's (lower is better; below 1 on average beats them).

    No single prior moves it far: gravity alone fixes MSE@10 and walls the rollout MSE, but a
    model whose one-step error, energy or structure is off pays for it in the same figure.
    Undefined (a blow-up) is infinite.
    """
    mine, logs = aggregates[model], []
    for key in SCORECARD:
        others = [a.get(key) for name, a in aggregates.items() if name != model and a.get(key) is not None]
        if not others or min(others) <= 0:
            continue
        if mine.get(key) is None:
            return math.inf
        logs.append(math.log(max(mine[key], 1e-300) / min(others)))
    return math.exp(float(np.mean(logs))) if logs else math.inf

