"""training.rollout: learned rollouts written in the dataset format and scored against baselines."""

import json
import shutil

import numpy as np
import pytest
import torch

from gnsim import TrajectoryFile, read_metadata
from gnsim.metrics import SCORECARD
from tests.conftest import needs_shared
from tests.test_training import tiny_config
from training.rollout import evaluate, hold_last_finite_frame, main
from training.train import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, falling_blocks):
    run = tmp_path_factory.mktemp("run")
    train(tiny_config("steps=3"), falling_blocks, run)
    return run


def test_rollout_file_is_a_dataset_with_ground_truth_and_kinematic_particles_on_it(
    trained_run, falling_blocks
):
    metrics = evaluate(
        trained_run, trained_run / "checkpoints" / "last.pt", falling_blocks, "valid", steps=10
    )
    rollouts = TrajectoryFile(trained_run / "rollouts" / "valid" / "valid.h5")
    truth = TrajectoryFile(f"{falling_blocks}/valid.h5")[0]
    predicted = rollouts[0]
    assert predicted.position.shape == (16, *truth.position.shape[1:])
    np.testing.assert_array_equal(predicted.extras["ground_truth"], truth.position[:16])
    np.testing.assert_array_equal(predicted.position[:6], truth.position[:6])  # the given history
    boundary = truth.particle_type == 3
    np.testing.assert_array_equal(predicted.position[:, boundary], truth.position[:16, boundary])
    assert not np.array_equal(predicted.position[6:, ~boundary], truth.position[6:16, ~boundary])
    assert read_metadata(trained_run / "rollouts" / "valid")["split"] == "valid"

    saved = json.loads((trained_run / "rollouts" / "valid" / "metrics.json").read_text())
    assert set(saved["methods"]) == {"model", "constant_velocity", "constant_velocity_gravity"}
    model = saved["methods"]["model"]
    assert (
        model["aggregate"]["trajectories"] == 1
        and len(model["trajectories"][0]["position_mse_over_time"]) == 16
    )
    # The stored curve is the MSE of the stored rollout, over the non-boundary particles.
    error = ((predicted.position - truth.position[:16])[:, ~boundary].astype(np.float64) ** 2).mean(
        axis=(1, 2)
    )
    np.testing.assert_allclose(model["trajectories"][0]["position_mse_over_time"], error, rtol=1e-6)
    assert metrics["rollout_file"] == str(trained_run / "rollouts" / "valid" / "valid.h5")
    assert set(saved["loses_on"]) <= set(SCORECARD) and saved["loses_on"] == metrics["loses_on"]


def test_a_rollout_that_blows_up_is_reported_with_its_frame_and_still_written(
    trained_run, falling_blocks
):
    checkpoint = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
    bias = next(
        key for key in reversed(checkpoint["model"]) if key.endswith("bias")
    )  # the decoder's output
    checkpoint["model"][bias] = torch.full_like(checkpoint["model"][bias], float("nan"))
    torch.save(checkpoint, trained_run / "checkpoints" / "broken.pt")
    metrics = evaluate(
        trained_run, trained_run / "checkpoints" / "broken.pt", falling_blocks, "valid", steps=8
    )
    assert metrics["methods"]["model"]["trajectories"][0]["blow_up_frame"] == 6
    assert metrics["methods"]["model"]["aggregate"]["blow_ups"] == 1
    stored = TrajectoryFile(trained_run / "rollouts" / "valid" / "valid.h5")[0]
    assert int(stored.extras["blow_up_frame"]) == 6
    np.testing.assert_array_equal(stored.position[6:], np.repeat(stored.position[5:6], 8, axis=0))


def test_hold_last_finite_frame_replaces_everything_from_the_first_bad_frame():
    position = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    position[2, 1, 0] = np.inf
    held, frame = hold_last_finite_frame(position)
    assert frame == 2
    np.testing.assert_array_equal(held[2:], [position[1], position[1]])
    assert hold_last_finite_frame(position[:2])[1] is None


def test_cli_prints_the_table_with_baselines(trained_run, falling_blocks, capsys):
    main([str(trained_run), "--data", falling_blocks, "--split", "valid", "--steps", "6"])
    out = capsys.readouterr().out
    for method in ("model", "constant_velocity", "constant_velocity_gravity"):
        assert method in out
    assert "the model loses to a baseline on: " in out or "beats both baselines on every row" in out
    assert "spacing err" in out and "|ΔE_kin|/E_kin" in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([], "give a RUN_DIR or --checkpoint FILE"),
        (["{run}", "--steps", "0"], "--steps must be at least 1, got 0"),
        (["{run}", "--steps", "500"], "has fewer than 506 frames for --steps 500"),
        (["{run}", "--checkpoint", "{run}/nothing.pt"], "nothing.pt: checkpoint not found"),
    ],
)
def test_bad_input_is_one_line(trained_run, falling_blocks, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_code:
        main(
            [a.format(run=trained_run) for a in arguments]
            + ["--data", falling_blocks, "--split", "valid"]
        )
    assert exit_code.value.code == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


@needs_shared("lagrangebench-3D_LJ_3")
def test_the_real_lagrangebench_dataset_converts_trains_and_rolls_out(tmp_path, capsys):
    # 3 Lennard-Jones particles in a periodic box of side 5 (shared/data, beside the checkout).
    from tests.test_convert import LAGRANGEBENCH

    source = tmp_path / "3D_LJ_3"
    shutil.copytree(LAGRANGEBENCH, source)
    run = tmp_path / "run"
    train(tiny_config("steps=3"), source, run)  # the original folder: converted once, beside it
    assert "converted the LagrangeBench dataset" in capsys.readouterr().err
    metrics = evaluate(run, run / "checkpoints" / "last.pt", source, "test", steps=20)
    assert "using" in capsys.readouterr().err  # the cache is reused, not converted again
    model = metrics["methods"]["model"]["trajectories"][0]
    assert model["blow_up_frame"] is None and model["mse_rollout"] is not None
    rolled = TrajectoryFile(run / "rollouts" / "test" / "test.h5")[0].position
    # The rollout wraps into the periodic box, as the data does.
    assert rolled.shape == (26, 3, 3) and rolled.min() >= 0.0 and rolled.max() < 5.0
