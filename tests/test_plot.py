"""viz.plot: training curves from metrics.jsonl and error-vs-time curves from rollout metrics, as PNG."""

import json

import numpy as np
import pytest
from PIL import Image

from gnsim.baselines import constant_velocity_gravity_rollout, constant_velocity_rollout
from gnsim.metrics import aggregate, evaluate_rollout
from viz.plot import main, mean_curve, smooth

METADATA = {
    "dim": 2,
    "dt": 0.01,
    "bounds": [[0.0, 1.0], [0.0, 1.0]],
    "default_connectivity_radius": 0.05,
    "gravity": [0.0, -9.81],
    "acc_mean": [0.0, 0.0],
    "vel_mean": [0, 0],
    "vel_std": [1, 1],
    "acc_std": [1, 1],
}


def thrown_particles(frames=40, seed=0):
    """Particles thrown upwards under gravity, bouncing elastically off the floor y = 0."""
    rng = np.random.default_rng(seed)
    start, velocity = rng.uniform(0.2, 0.8, (30, 2)), rng.uniform(-0.5, 1.0, (30, 2))
    time = np.arange(frames)[:, None, None] * METADATA["dt"]
    position = start + velocity * time + 0.5 * np.array([0.0, -9.81]) * time**2
    position[..., 1] = np.abs(position[..., 1])  # mirror image of the floor: an elastic bounce
    return position.astype(np.float32), np.full(30, 5)


def write_run(folder):
    folder.mkdir()
    lines = [{"step": s, "loss": float(1.0 / (1 + s) + 0.01)} for s in range(0, 200, 10)]
    for record in lines[::5]:
        record.update(
            valid_one_step_mse=record["loss"] * 1e-4, valid_rollout_mse=record["loss"] * 1e-2
        )
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / "rollouts" / "test").mkdir(parents=True)
    methods = {"constant_velocity": [], "constant_velocity_gravity": []}
    for seed in range(2):
        truth, particle_type = thrown_particles(seed=seed)
        for name, predicted in (
            ("constant_velocity", constant_velocity_rollout(truth, particle_type)),
            (
                "constant_velocity_gravity",
                constant_velocity_gravity_rollout(truth, particle_type, METADATA),
            ),
        ):
            methods[name].append(
                evaluate_rollout(predicted, truth, particle_type, METADATA, sinkhorn_stride=8)
            )
    metrics = {
        name: {"aggregate": aggregate(runs), "trajectories": runs} for name, runs in methods.items()
    }
    (folder / "rollouts" / "test" / "metrics.json").write_text(json.dumps(metrics))
    return folder, metrics


def test_gravity_baseline_beats_constant_velocity_on_a_ballistic_scene(tmp_path):
    _, metrics = write_run(tmp_path / "run")
    velocity = metrics["constant_velocity"]["aggregate"]
    gravity = metrics["constant_velocity_gravity"]["aggregate"]
    # semi-implicit Euler with g dt^2 follows a parabola exactly, so it is only wrong after a bounce
    assert gravity["mse_10"] < 0.1 * velocity["mse_10"]
    assert gravity["mse_rollout"] < velocity["mse_rollout"]


def test_plot_writes_both_figures(tmp_path, capsys):
    folder, _ = write_run(tmp_path / "run")
    assert main([str(folder)]) == 0
    output = capsys.readouterr().out
    assert "loss, valid_one_step_mse, valid_rollout_mse" in output
    assert "constant_velocity, constant_velocity_gravity" in output
    for path in (folder / "training_curves.png", folder / "rollouts" / "test" / "error_vs_time.png"):
        image = np.asarray(Image.open(path).convert("RGB"))
        assert image.shape[0] > 300 and image.shape[1] > 600
        assert (
            len(np.unique(image.reshape(-1, 3), axis=0)) > 20
        )  # lines, text and axes, not a blank page


def test_smooth_is_a_trailing_running_mean():
    np.testing.assert_allclose(smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])


def test_mean_curve_ignores_missing_values_and_pads_short_trajectories():
    trajectories = [{"c": [1.0, None, 3.0]}, {"c": [3.0, 4.0]}]
    np.testing.assert_allclose(mean_curve(trajectories, "c"), [2.0, 4.0, 3.0])


@pytest.mark.parametrize("content", [None, "not json\n", '{"loss": 1}\n'])
def test_missing_or_malformed_logs_are_one_line_errors(tmp_path, capsys, content):
    folder = tmp_path / "run"
    folder.mkdir()
    if content is not None:
        (folder / "metrics.jsonl").write_text(content)
    assert main([str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
