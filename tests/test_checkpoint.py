"""gnsim.checkpoint: a trained model rolls out on any dataset of the same physics."""

import json

import pytest
import torch

from gnsim import read_metadata
from gnsim.checkpoint import CheckpointError, load_run, simulator_from_checkpoint
from tests.conftest import write_dataset
from tests.test_training import TINY as TINY_ARGS
from tests.test_training import tiny_config
from training.rollout import evaluate
from training.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory, falling_blocks):
    folder = tmp_path_factory.mktemp("run")
    train(tiny_config("steps=2"), falling_blocks, folder)
    return folder


def test_a_model_keeps_its_normalisation_and_takes_the_bounds_of_the_data_it_rolls_out_on(
    run, falling_blocks, tmp_path
):
    other = write_dataset(tmp_path / "other", train=2, valid=1, seed=7)
    metadata = json.loads((tmp_path / "other" / "metadata.json").read_text())
    metadata["bounds"] = [[-0.5, 1.5], [0.0, 2.0]]  # a larger box of the same physics
    (tmp_path / "other" / "metadata.json").write_text(json.dumps(metadata))
    trained = read_metadata(falling_blocks)
    assert metadata["vel_std"] != trained["vel_std"]  # another seed: other statistics

    simulator, _ = simulator_from_checkpoint(run / "checkpoints" / "last.pt", read_metadata(other))
    expected_std = torch.tensor(trained["vel_std"]).double() ** 2 + simulator.config.noise_std**2
    torch.testing.assert_close(simulator.velocity_normalizer.std.double(), expected_std.sqrt().float().double())
    assert simulator.boundaries.tolist() == metadata["bounds"]
    metrics = evaluate(run, run / "checkpoints" / "last.pt", other, "valid", steps=5)
    assert metrics["methods"]["model"]["aggregate"]["mse_1"] is not None
    assert load_run(run, other).metadata["bounds"] == metadata["bounds"]


@pytest.mark.parametrize("key", ["dt", "dim", "default_connectivity_radius"])
def test_a_dataset_of_other_physics_is_refused_naming_the_field(run, falling_blocks, key):
    metadata = read_metadata(falling_blocks)
    with pytest.raises(CheckpointError, match=f"metadata differs from the checkpoint's: {key}="):
        simulator_from_checkpoint(run / "checkpoints" / "last.pt", {**metadata, key: 2 * metadata[key]})


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_an_unreadable_checkpoint_is_one_line(tmp_path, content):
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        simulator_from_checkpoint(path, {})
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_shipped_model_is_weights_only_and_rolls_out_from_its_folder(tmp_path, falling_blocks, capsys):
    from training.rollout import main as rollout_main
    from training.ship import main as ship_main
    from training.train import main as train_main

    run = tmp_path / "run"
    train_main(["--config", "quick", "--data", falling_blocks, "--out", str(run), *TINY_ARGS, "steps=2"])
    assert (run / "command.txt").read_text().startswith("python -m training.train --config quick")
    ship_main([str(run), str(tmp_path / "models" / "tiny")])
    model = tmp_path / "models" / "tiny"
    saved = torch.load(model / "model.pt", weights_only=True)
    assert set(saved) == {"step", "model", "config", "model_config", "metadata"}
    assert (model / "command.txt").read_text() == (run / "command.txt").read_text()
    capsys.readouterr()
    rollout_main([str(model), "--data", falling_blocks, "--split", "valid", "--steps", "4"])
    assert "wrote " + str(model / "rollouts" / "valid" / "valid.h5") in capsys.readouterr().out


def test_the_learning_curve_scores_every_kept_checkpoint(tmp_path, falling_blocks, capsys):
    from training.diagnostics.learning_curve import main as curve_main

    run = tmp_path / "run"
    train(tiny_config("steps=2", "keep_every=1"), falling_blocks, run)
    curve_main([str(run), "--data", falling_blocks, "--split", "valid"])
    rows = capsys.readouterr().out.splitlines()
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| 1", "| 2", "| constant_velocity", "| constant_velocity_gravity"]
    saved = json.loads((run / "learning_curve_valid.json").read_text())
    assert set(saved["curve"]) == {"1", "2"} and "mse_rollout" in saved["curve"]["2"]["model"]
    with pytest.raises(SystemExit):
        curve_main([str(run), "--data", falling_blocks, "--steps", "7"])
    assert capsys.readouterr().err.strip().endswith("no kept checkpoint of step 7 (keep_every)")
