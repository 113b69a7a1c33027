"""Training curves and rollout error-versus-time curves of a run, as PNG.

python -m viz.plot runs/water
  reads  runs/water/metrics.jsonl           (one JSON object a line: step, loss, valid_* ...)
         runs/water/rollouts/test/metrics.json  {METHOD: {"aggregate": {...}, "trajectories": [
                                              gnsim.metrics.evaluate_rollout(...), ...]}, ...}
                                              (METHOD e.g. model, constant_velocity; or under "methods")
  writes runs/water/training_curves.png and runs/water/rollouts/test/error_vs_time.png

matplotlib comes with pyvista (one of its requirements), so plotting adds no dependency.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gnsim.atomic import replacing
from gnsim.dataset import DatasetError, read_json_lines

# Curves of gnsim.metrics.evaluate_rollout: key -> (axis title, log scale)
CURVES = {
    "position_mse_over_time": ("position MSE (m²)", True),
    "sinkhorn_over_time": ("Sinkhorn distance (m)", True),
    "kinetic_energy_error_over_time": ("|kinetic energy error| (J, unit masses)", True),
    "fraction_outside_over_time": ("fraction of particles outside the domain", False),
}
VALIDATION_KEYS = ("valid_one_step_mse", "valid_rollout_mse")


class PlotError(ValueError):
    """An input file is missing or malformed."""


def read_training_log(path: Path) -> list[dict]:
    """The JSON lines of metrics.jsonl; each needs a `step` (a torn last line is dropped)."""
    try:
        records = read_json_lines(path)
    except DatasetError as error:
        raise PlotError(str(error)) from None
    if not records:
        raise PlotError(f"{path}: no records")
    return records


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean over `window` records (the loss is noisy step to step)."""
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def _save(figure, out: Path) -> None:
    with replacing(out, out.suffix) as temporary:
        figure.savefig(temporary, dpi=120, format="png")


def plot_training(records: list[dict], out: Path) -> list[str]:
    """Loss (raw and smoothed) and the validation scores against the step; returns the series drawn."""
    import matplotlib.pyplot as plt

    drawn = []
    validation = [key for key in VALIDATION_KEYS if any(key in r for r in records)]
    figure, axes = plt.subplots(1, 2 if validation else 1, figsize=(11 if validation else 6, 4), squeeze=False)
    loss = [(r["step"], r["loss"]) for r in records if isinstance(r.get("loss"), (int, float))]
    axis = axes[0, 0]
    if loss:
        steps, values = np.array(loss, dtype=np.float64).T
        axis.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
        axis.plot(steps, smooth(values, max(len(values) // 50, 1)), color="tab:blue", label="loss (smoothed)")
        drawn.append("loss")
    axis.set(xlabel="step", ylabel="training loss", yscale="log" if loss and min(v for _, v in loss) > 0 else "linear",
             title="training")
    axis.legend()
    for key in validation:
        points = np.array([(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))])
        axes[0, 1].plot(points[:, 0], points[:, 1], marker="o", markersize=3, label=key)
        drawn.append(key)
    if validation:
        axes[0, 1].set(xlabel="step", ylabel="MSE (m²)", yscale="log", title="validation")
        axes[0, 1].legend()
    figure.tight_layout()
    _save(figure, out)
    plt.close(figure)
    return drawn


def rollout_methods(metrics: dict) -> dict[str, list[dict]]:
    """Method name -> per-trajectory metrics, from a metrics.json (top level or under 'methods')."""
    container = metrics.get("methods", metrics)
    return {name: value["trajectories"] for name, value in container.items()
            if isinstance(value, dict) and isinstance(value.get("trajectories"), list) and value["trajectories"]}


def mean_curve(trajectories: list[dict], key: str) -> np.ndarray:
    """Mean over trajectories of one curve, frame by frame (None, NaN and missing frames ignored)."""
    curves = [np.array([np.nan if v is None else v for v in t[key]], dtype=np.float64)
              for t in trajectories if t.get(key)]
    if not curves:
        return np.array([])
    table = np.full((len(curves), max(len(c) for c in curves)), np.nan)
    for row, curve in zip(table, curves):
        row[:len(curve)] = curve
    with np.errstate(all="ignore"):
        counts = np.isfinite(table).sum(axis=0)
        return np.where(counts > 0, np.nansum(table, axis=0) / np.maximum(counts, 1), np.nan)


def plot_rollouts(metrics: dict, out: Path) -> list[str]:
    """One panel per curve, one line per method (mean over trajectories); returns the methods drawn."""
    import matplotlib.pyplot as plt

    methods = rollout_methods(metrics)
    if not methods:
        raise PlotError(f"{out.parent / 'metrics.json'}: no method with per-trajectory curves")
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for axis, (key, (title, log)) in zip(axes.flat, CURVES.items()):
        for name, trajectories in methods.items():
            curve = mean_curve(trajectories, key)
            if not len(curve):
                continue
            frames = trajectories[0].get("sinkhorn_frames") if key == "sinkhorn_over_time" else None
            x = np.asarray(frames[:len(curve)]) if frames else np.arange(len(curve))
            positive = np.isfinite(curve) & (curve > 0) if log else np.isfinite(curve)
            axis.plot(x[positive], curve[positive], label=name)
        axis.set(xlabel="frame", title=title, yscale="log" if log and axis.lines else "linear")
        if axis.lines:
            axis.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, out)
    plt.close(figure)
    return list(methods)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viz.plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a training run folder (holding metrics.jsonl and/or rollouts/)")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    training, rollouts = args.run_dir / "metrics.jsonl", args.run_dir / "rollouts" / "test" / "metrics.json"
    if not training.is_file() and not rollouts.is_file():
        print(f"error: {args.run_dir}: neither metrics.jsonl nor rollouts/test/metrics.json found", file=sys.stderr)
        return 2
    try:
        if training.is_file():
            out = args.run_dir / "training_curves.png"
            drawn = plot_training(read_training_log(training), out)
            print(f"wrote {out} ({', '.join(drawn) or 'no series'})")
        if rollouts.is_file():
            try:
                metrics = json.loads(rollouts.read_text())
            except json.JSONDecodeError as error:
                raise PlotError(f"{rollouts}: not valid JSON ({error.msg} at line {error.lineno})") from None
            out = rollouts.parent / "error_vs_time.png"
            print(f"wrote {out} ({', '.join(plot_rollouts(metrics, out))})")
    except PlotError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
