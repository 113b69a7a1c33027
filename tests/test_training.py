"""The trainer: it learns, resumes exactly, matches under DDP, and reports bad input in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnsim import WindowDataset, read_metadata
from gnsim.learned_simulator import SimulatorConfig
from gnsim.neighbors import Connectivity
from gnsim.strategies import TrainingNoise
from tests.conftest import write_dataset
from training.config import load_config
from training.data import NoisyWindows
from training.train import main, train

pytestmark = pytest.mark.usefixtures("single_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "connectivity_radius=null",
    "latent_size=16",
    "mlp_hidden_size=16",
    "message_passing_steps=2",
    "particle_type_embedding_size=4",
    "num_workers=0",
    "log_every=1",
    "validate_every=1000",
    "checkpoint_every=1000",
    "tensorboard=false",
    "rollout_steps=4",
    "batch_size=2",  # windows, not the preset's particle budget: the datasets here are tiny
]


def tiny_config(*overrides):
    return load_config("quick", TINY + list(overrides))


def losses(run):
    lines = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if "loss" in line]


def parameters(run, name="last.pt"):
    return torch.load(Path(run) / "checkpoints" / name, weights_only=True, map_location="cpu")


def test_one_step_model_overfits_a_tiny_dataset(tmp_path):
    data = write_dataset(tmp_path / "data", train=1, valid=1, frames=8)  # 2 windows: one batch
    config = tiny_config(
        "steps=150",
        "noise_std=0",
        "learning_rate=3e-3",
        "learning_rate_final=3e-3",
        "latent_size=32",
        "mlp_hidden_size=32",
    )
    train(config, data, tmp_path / "run")
    history = losses(tmp_path / "run")
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert len(history) == 150
    assert last < first / 10, f"loss {first:.3g} -> {last:.3g}"


def test_resume_gives_the_same_parameters_as_training_straight_through(tmp_path, falling_blocks):
    # On the CPU: CUDA's scatter-add atomics sum in a varying order, so two CUDA runs differ too.
    config = tiny_config(
        "steps=8", "checkpoint_every=4", "validate_every=4", "device=cpu", "ema_decay=0.9"
    )
    train(config, falling_blocks, tmp_path / "straight")
    train({**config, "steps": 4}, falling_blocks, tmp_path / "resumed")
    train(config, falling_blocks, tmp_path / "resumed", resume=True)
    straight, resumed = parameters(tmp_path / "straight"), parameters(tmp_path / "resumed")
    assert straight["step"] == resumed["step"] == 8
    for weights in ("model", "average"):
        for name, value in straight[weights].items():
            assert torch.allclose(value, resumed[weights][name], rtol=0, atol=1e-7), name
    assert not torch.equal(
        straight["average"]["graph_network.node_encoder.0.weight"],
        straight["model"]["graph_network.node_encoder.0.weight"],
    )
    exp_avg = [state["exp_avg"] for state in straight["optimizer"]["state"].values()]
    resumed_exp_avg = [state["exp_avg"] for state in resumed["optimizer"]["state"].values()]
    assert all(torch.allclose(a, b, rtol=0, atol=1e-9) for a, b in zip(exp_avg, resumed_exp_avg))
    assert losses(tmp_path / "straight") == pytest.approx(losses(tmp_path / "resumed"), abs=1e-6)
    assert all(float(state["step"]) == 8 for state in resumed["optimizer"]["state"].values())


def test_position_correcting_noise_keeps_the_noisy_inputs_and_the_clean_target(falling_blocks):
    windows = WindowDataset(falling_blocks, "train")
    graph = Connectivity(0.085, read_metadata(falling_blocks)["bounds"])

    def sample(noise_std, correct_position_noise=False):
        noise = TrainingNoise(noise_std, correct_position_noise)
        return NoisyWindows(windows, SimulatorConfig(), graph, noise)[(7, 11)]

    clean, paper, corrected = sample(0.0), sample(1e-3), sample(1e-3, True)
    assert torch.equal(corrected.position, paper.position)
    assert not torch.equal(corrected.position, clean.position)
    assert torch.equal(corrected.target, clean.target)
    assert not torch.allclose(paper.target, clean.target)


def test_two_process_gloo_ddp_equals_one_process_with_the_same_global_batch(
    tmp_path, falling_blocks
):
    # The paper's target: with the position-correcting one, Adam turns the sum-order round-off of
    # some near-zero edge-MLP gradients into +-lr steps (weights 1e-4 apart after 4 steps, while
    # the losses agree to 1e-6), which says nothing about DDP. The same holds for the conserving
    # decoder, whose pair terms' gradients nearly cancel between an edge and its reverse.
    # float32 (amp=off): in bf16 the two ranks' partial sums round differently from one sum.
    overrides = TINY + ["steps=4", "batch_size=4", "device=cpu", "correct_position_noise=false",
                        "conserve_momentum=false", "amp=off"]
    train(load_config("quick", overrides), falling_blocks, tmp_path / "single")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training.train",
        "--config",
        "quick",
        "--data",
        falling_blocks,
        "--out",
        str(tmp_path / "ddp"),
        *overrides,
    ]
    result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted below
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    single, ddp = parameters(tmp_path / "single"), parameters(tmp_path / "ddp")
    for name, value in single["model"].items():
        assert torch.allclose(value, ddp["model"][name], rtol=1e-5, atol=1e-6), name
    assert losses(tmp_path / "single") == pytest.approx(losses(tmp_path / "ddp"), rel=1e-5)


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    error = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(error) == 1 and error[0].startswith("error: "), error
    return error[0]


def test_a_missing_dataset_is_one_line(tmp_path, capsys):
    message = run_main(
        ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")], capsys
    )
    assert (
        "no usable dataset" in message
        and "nowhere" in message
        and "metadata.json: file not found" in message
    )


def test_an_unknown_config_key_is_one_line_with_a_suggestion(tmp_path, capsys, falling_blocks):
    message = run_main(
        ["--data", falling_blocks, "--out", str(tmp_path / "run"), "latnet_size=8"], capsys
    )
    assert (
        message
        == "error: unknown config key 'latnet_size' in the command line (did you mean 'latent_size'?)"
    )


def test_a_checkpoint_of_another_model_shape_is_one_line(tmp_path, capsys, falling_blocks):
    train(tiny_config("steps=2"), falling_blocks, tmp_path / "run")
    message = run_main(["--resume", "--out", str(tmp_path / "run"), "latent_size=8"], capsys)
    assert "checkpoint holds a model of another shape: latent_size=16 there, 8 here" in message
    # the same through init_from, loading its weights into a new run
    message = run_main(
        [
            "--config",
            "quick",
            "--data",
            falling_blocks,
            "--out",
            str(tmp_path / "new"),
            *TINY,
            "message_passing_steps=3",
            f"init_from={tmp_path / 'run' / 'checkpoints' / 'last.pt'}",
        ],
        capsys,
    )
    assert "another shape: message_passing_steps=2 there, 3 here" in message


def test_resuming_on_a_dataset_with_other_metadata_is_one_line(tmp_path, capsys, falling_blocks):
    train(tiny_config("steps=2"), falling_blocks, tmp_path / "run")
    other = write_dataset(tmp_path / "other", train=1, valid=0, frames=10, seed=7)
    message = run_main(
        ["--resume", "--out", str(tmp_path / "run"), "--data", other, "steps=4"], capsys
    )
    assert "the dataset's metadata differs from the checkpoint's: vel_mean=" in message


def test_a_dataset_too_small_for_the_batch_is_one_line(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", train=1, valid=0, frames=7)  # a single window
    message = run_main(
        ["--config", "quick", "--data", data, "--out", str(tmp_path / "run"), *TINY], capsys
    )
    assert message.endswith("the dataset has 1 samples, fewer than batch_size 2")


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_a_trained_simulator_comes_back_from_its_checkpoint(tmp_path, falling_blocks, ema_decay):
    from gnsim.checkpoint import simulator_from_checkpoint

    train(tiny_config("steps=2", f"ema_decay={ema_decay}"), falling_blocks, tmp_path / "run")
    simulator, checkpoint = simulator_from_checkpoint(
        tmp_path / "run/checkpoints/last.pt", read_metadata(falling_blocks)
    )
    assert checkpoint["step"] == 2 and not simulator.training
    # The weight average when the run kept one: the weights validation scored.
    saved = parameters(tmp_path / "run")["average" if ema_decay else "model"]
    assert simulator.config.latent_size == 16
    assert all(torch.equal(value, saved[name]) for name, value in simulator.state_dict().items())


def test_a_config_value_of_the_wrong_type_is_one_line(tmp_path, capsys, falling_blocks):
    message = run_main(
        ["--data", falling_blocks, "--out", str(tmp_path / "run"), "steps=many"], capsys
    )
    assert message == "error: config key 'steps' in the command line must be an integer, got 'many'"


@pytest.mark.parametrize(
    "override, error",
    [
        ("connectivity_radius=wide", "config key 'connectivity_radius' in the command line must be a number, got 'wide'"),
        ("wall_feature_range=-0.2", "config key 'wall_feature_range' in the command line must be above 0, got -0.2"),
        ("connectivity_radius=-0.1", "config key 'connectivity_radius' in the command line must be above 0, got -0.1"),
        ("batch_size=0", "config key 'batch_size' in the command line must be at least 1, got 0"),
        ("learning_rate=-1", "config key 'learning_rate' in the command line must be above 0, got -1.0"),
        ("steps=-5", "config key 'steps' in the command line must be at least 0, got -5"),
        ("noise_std=-1", "config key 'noise_std' in the command line must be at least 0, got -1.0"),
        ("amp=fp8", "config key 'amp' in the command line must be one of auto, bf16, off, got 'fp8'"),
        ("aggregation=[1,2]", "config key 'aggregation' in the command line must be one of sum, mean, max, got '[1,2]'"),
        ("amp=yes", "config key 'amp' in the command line must be one of auto, bf16, off, got 'yes'"),
        ("ema_decay=1", "config key 'ema_decay' in the command line must be at least 0 and at most 0.999999, got 1.0"),
    ],
)
def test_an_optional_model_number_is_checked_before_training(tmp_path, capsys, falling_blocks, override, error):
    message = run_main(["--data", falling_blocks, "--out", str(tmp_path / "run"), override], capsys)
    assert message == f"error: {error}"
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_quick_preset_beats_both_baselines_past_the_first_frames_on_small_water(tmp_path):
    """The acceptance run: `simulators.generate water` (small), then the `quick` preset (minutes).
    On the 8 valid trajectories its best checkpoint beats both baselines on every row past the
    first ten frames, and its whole rollouts are within half the better baseline's (measured at
    step 1500: 0.27x, and MSE@100 0.32x, Sinkhorn 0.52x, kinetic energy 0.66x, spacing 0.70x). It
    does not beat exact free fall at MSE@1 and MSE@10 (102x and 4.6x constant velocity plus
    gravity), so its scorecard score is 1.32, not below 1: the learned-model bar of issue 31 is
    not what 1500 CPU steps reach."""
    from simulators.generate import generate

    data = generate("water", tmp_path / "water", size="small", device="cpu")
    metrics = train(load_config("quick", ["tensorboard=false"]), data, tmp_path / "run")
    best = parameters(tmp_path / "run", "best.pt")["best"]
    print(json.dumps({"best_valid_score": best, **metrics}))
    validations = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
                   if "valid_score" in line]
    scored = min(validations, key=lambda record: record["valid_score"])
    assert scored["valid_score"] == best
    baseline = {row: min(scored[f"valid_constant_velocity_{row}"], scored[f"valid_constant_velocity_gravity_{row}"])
                for row in ("mse_100", "rollout_mse", "sinkhorn_mean", "kinetic_energy_relative_error",
                            "spacing_error_mean")}
    assert all(scored[f"valid_{row}"] < value for row, value in baseline.items()), scored
    assert scored["valid_rollout_mse"] < 0.5 * baseline["rollout_mse"]
