"""The training recipe's data-relative settings, pushforward, and runs continued from a model folder."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gnsim.dataset import DatasetWriter, WindowDataset, read_metadata
from gnsim.strategies import PushforwardSchedule, pushforward_target
from tests.test_training import TINY, parameters, tiny_config
from training.config import load_config
from training.data import seeded_generator
from training.ship import ship
from training.train import main, train


def saved_config(run) -> dict:
    return yaml.safe_load((Path(run) / "config.yaml").read_text())


def test_relative_noise_and_particle_batches_are_recorded_as_absolute_values(tmp_path, falling_blocks):
    train(tiny_config("steps=1", "noise_std_relative=2.5", "batch_particles=100"), falling_blocks,
          tmp_path / "run")
    config, metadata = saved_config(tmp_path / "run"), read_metadata(falling_blocks)
    assert config["noise_std"] == pytest.approx(2.5 * np.mean(metadata["acc_std"]))
    # 54 particles (35 moving, 19 boundary) in every window: 100 particles are 2 windows
    assert WindowDataset(falling_blocks).mean_particles() == 54
    assert config["batch_size"] == 2
    model = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert model["model_config"]["noise_std"] == config["noise_std"]  # it sets the normalisation


def test_pushforward_draws_only_unlocked_unrolls_by_weight():
    schedule = PushforwardSchedule([0, 10, 20], [6, 3, 1])
    draws = {step: [schedule.draw(step, seeded_generator(0, 2 << 20, step * 10_000 + k))
                    for k in range(4000)] for step in (0, 15, 25)}
    assert set(draws[0]) == {0}
    assert set(draws[15]) == {0, 1} and np.mean(draws[15]) == pytest.approx(3 / 9, abs=0.03)
    assert np.bincount(draws[25]) / 4000 == pytest.approx([0.6, 0.3, 0.1], abs=0.03)
    with pytest.raises(ValueError, match="must start at 0"):
        PushforwardSchedule([5, 10], [1, 1])


def test_pushforward_target_is_the_true_next_velocity_or_position_from_the_predicted_inputs():
    truth = torch.tensor([[[0.0, 0.0], [1.0, 0.5], [3.0, 1.5]]])  # [N=1, K + 1 = 3, D]
    predicted = torch.tensor([[[0.9, 0.4], [1.2, 0.7]]])  # the model's last two positions
    difference = torch.sub
    assert torch.equal(pushforward_target(truth, predicted, 2, True, difference), truth[:, 2])
    expected = predicted[:, -1] + (truth[:, 2] - truth[:, 1])
    assert torch.equal(pushforward_target(truth, predicted, 2, False, difference), expected)


def test_pushforward_training_resumes_exactly(tmp_path, falling_blocks):
    config = tiny_config("steps=6", "checkpoint_every=3", "device=cpu", "pushforward=true",
                         "pushforward_unlock_steps=[0,1,2]", "pushforward_weights=[1,1,1]")
    train(config, falling_blocks, tmp_path / "straight")
    train({**config, "steps": 3}, falling_blocks, tmp_path / "resumed")
    train(config, falling_blocks, tmp_path / "resumed", resume=True)
    straight, resumed = parameters(tmp_path / "straight"), parameters(tmp_path / "resumed")
    for name, value in straight["model"].items():
        assert torch.allclose(value, resumed["model"][name], rtol=0, atol=1e-7), name
    unrolls = [PushforwardSchedule([0, 1, 2], [1, 1, 1]).draw(s, seeded_generator(0, 2 << 20, s))
               for s in range(6)]
    assert max(unrolls) > 0  # the run did unroll


def test_a_shipped_run_continues_on_a_fresh_machine_exactly(tmp_path, falling_blocks):
    overrides = [*TINY, "steps=8", "checkpoint_every=4", "validate_every=4", "device=cpu"]
    train(load_config("quick", overrides), falling_blocks, tmp_path / "straight")
    train(load_config("quick", [*overrides, "steps=4"]), falling_blocks, tmp_path / "first",
          command="python -m training.train steps=4")
    ship(tmp_path / "first", tmp_path / "models" / "m")
    assert {p.name for p in (tmp_path / "models" / "m").iterdir()} >= {
        "model.pt", "state.pt", "config.yaml", "command.txt", "metrics.jsonl"}
    shutil.rmtree(tmp_path / "first")  # the other machine has only the model folder and the data
    main(["--resume", "--from", str(tmp_path / "models" / "m"), "--out", str(tmp_path / "second"),
          "--data", falling_blocks, "steps=8"])
    straight, continued = parameters(tmp_path / "straight"), parameters(tmp_path / "second")
    assert continued["step"] == 8
    for name, value in straight["model"].items():
        assert torch.allclose(value, continued["model"][name], rtol=0, atol=1e-7), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "second" / "metrics.jsonl").open()]
    assert steps[0] == 1 and steps[-1] == 8  # the learning curve carries on from the shipped one


def test_an_absolute_value_on_the_command_line_replaces_the_presets_relative_one():
    assert load_config("quick")["noise_std_relative"] == 3.7
    config = load_config("quick", ["noise_std=1e-4", "batch_size=4"])
    assert config["noise_std_relative"] is None and config["batch_particles"] is None
    assert load_config("quick", ["noise_std_relative=2"])["noise_std_relative"] == 2


def test_the_paper_preset_is_the_defaults_and_the_defaults_are_the_published_recipe():
    paper = load_config("paper")
    assert paper == load_config("paper", [])
    published = {"latent_size": 128, "mlp_hidden_size": 128, "mlp_num_hidden_layers": 2,
                 "message_passing_steps": 10, "shared_weights": False, "aggregation": "sum",
                 "layer_norm": True, "input_frames": 6, "noise_std": 6.7e-4,
                 "particle_type_embedding_size": 16, "batch_size": 2, "steps": 20_000_000,
                 "learning_rate": 1e-4, "learning_rate_final": 1e-6, "learning_rate_decay": 0.1,
                 "learning_rate_decay_steps": 5_000_000, "self_edges": True,
                 "conserve_momentum": False, "hard_walls": False, "pushforward": False,
                 "noise_std_relative": None, "batch_particles": None, "correct_position_noise": False}
    assert {key: paper[key] for key in published} == published


def test_a_model_with_material_features_trains_validates_rolls_out_and_scores_its_curve(tmp_path, capsys):
    from tests.conftest import falling_block
    from training.diagnostics.learning_curve import main as curve_main
    from training.rollout import evaluate

    with DatasetWriter(tmp_path / "data", dim=2, dt=0.01, bounds=[[0, 1], [0, 1]],
                       connectivity_radius=0.085) as writer:
        for split, seed in (("train", 0), ("train", 1), ("valid", 2), ("test", 3)):
            writer.add(split, *falling_block(seed, frames=12), material=np.float32([0.3 + 0.1 * seed]))
    run = tmp_path / "run"
    train(tiny_config("steps=2", "keep_every=1", "validate_every=2", "material_features=1"),
          tmp_path / "data", run)
    assert "valid_rollout_mse" in (run / "metrics.jsonl").read_text()
    assert evaluate(run, run / "checkpoints" / "last.pt", tmp_path / "data")["step"] == 2
    curve_main([str(run), "--data", str(tmp_path / "data")])
    assert "| 2 |" in capsys.readouterr().out
