"""Hostile and broken inputs, each built here: one-line errors, nothing run, nothing half-written.

docs/reliability.md keeps the table of what was tried and what happens.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gnsim.convert.__main__ import main as convert_main
from training.train import main as train_main


class RunsCode:
    """Unpickling this would run a shell command: what a crafted gns .npz can hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def hostile_npz(tmp_path):
    folder = tmp_path / "downloaded"
    folder.mkdir()
    metadata = {"dim": 2, "bounds": [[0, 1], [0, 1]], "default_connectivity_radius": 0.05, "dt": 0.005,
                "sequence_length": 9, "vel_mean": [0, 0], "vel_std": [1, 1], "acc_mean": [0, 0], "acc_std": [1, 1]}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    trajectories = np.empty(1, dtype=object)
    trajectories[0] = (np.zeros((10, 4, 2), np.float32), RunsCode(tmp_path / "PWNED"))
    np.savez(folder / "train.npz", gns_data=trajectories)
    return folder


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    return error


def test_a_crafted_npz_is_refused_by_the_converter_and_runs_nothing(hostile_npz, tmp_path, capsys):
    assert convert_main([str(hostile_npz), str(tmp_path / "out")]) == 2
    assert "refused to load posix.system: not part of a gns dataset" in one_line_error(capsys)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()


def test_a_crafted_npz_is_refused_by_the_trainer_and_runs_nothing(hostile_npz, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_code:
        train_main(["--config", "quick", "--data", str(hostile_npz), "--out", str(tmp_path / "run"), "steps=2"])
    assert exit_code.value.code == 2
    said, error = capsys.readouterr().err.strip().splitlines()  # the trainer says it converts, then why not
    assert said.startswith("converting ") and "refused to load posix.system" in error
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "run").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloaded"]  # no cache left behind


def test_a_split_file_from_another_write_is_refused_and_stale_splits_are_removed(tmp_path):
    from gnsim import DatasetError, WindowDataset, validate
    from tests.conftest import write_dataset

    first = write_dataset(tmp_path / "first", train=2, valid=1, seed=0)
    second = write_dataset(tmp_path / "second", train=2, valid=1, seed=5)
    # As a rewrite interrupted between renaming its split files and writing its metadata leaves it:
    shutil.copyfile(f"{second}/train.h5", f"{first}/train.h5")
    for read in (validate, lambda folder: WindowDataset(folder, "train")):
        with pytest.raises(DatasetError, match="train.h5: not the file metadata.json was written with"):
            read(first)
    # Rewriting a folder without a valid split removes the old valid.h5 rather than keeping it.
    write_dataset(tmp_path / "first", train=2, valid=0, seed=1)
    assert not (tmp_path / "first" / "valid.h5").exists()
    validate(first)


@pytest.mark.parametrize("case", ["huge positions", "learning rate 10"])
def test_training_that_diverges_stops_with_one_line_and_keeps_no_broken_checkpoint(tmp_path, capsys, case):
    import h5py

    from tests.conftest import write_dataset
    from tests.test_training import TINY

    data = write_dataset(tmp_path / "data", train=2, valid=1)
    overrides = ["learning_rate=10", "learning_rate_final=10"] if case == "learning rate 10" else []
    if case == "huge positions":  # a few particles 1e30 m away: written past the writer's checks
        with h5py.File(f"{data}/train.h5", "r+") as file:
            file["00000/position"][10:, :3] = 1e30
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_code:
        train_main(["--config", "quick", "--data", data, "--out", str(run), *TINY, "steps=300",
                    "checkpoint_every=1", "log_every=1000", *overrides])
    assert exit_code.value.code == 2
    # Positions a box size outside the bounds are refused on read now (issue 33), before training.
    expected = "lies more than 1 box size outside the bounds" if case == "huge positions" else "training diverged at step"
    assert expected in one_line_error(capsys)
    for checkpoint in (run / "checkpoints").glob("*.pt"):
        weights = torch.load(checkpoint, weights_only=True)["model"]
        assert all(torch.isfinite(w).all() for w in weights.values())


def test_validate_refuses_positions_a_box_size_outside_the_bounds(tmp_path):
    import h5py

    from gnsim import DatasetError, validate
    from tests.conftest import write_dataset

    data = write_dataset(tmp_path / "data", train=1, valid=0)
    validate(data)
    with h5py.File(f"{data}/train.h5", "r+") as file:
        file["00000/position"][4, 2, 1] = 1e30
    with pytest.raises(DatasetError, match=r"train.h5 trajectory 00000: position\[4, 2, 1\] = 1e\+30 lies more"):
        validate(data)


def test_ctrl_c_saves_the_step_reached_and_resume_continues_and_clears_killed_saves(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import write_dataset
    from tests.test_training import TINY

    data = write_dataset(tmp_path / "data", train=2, valid=1)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "training.train", "--config", "quick", "--data", data, "--out", str(run),
               *TINY, "steps=100000", "checkpoint_every=100000", "log_every=1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1],
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 3):
        assert process.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    message = process.stderr.read().strip().splitlines()[-1]
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert message.startswith(f"interrupted at step {step}: ") and "--resume --out" in message
    killed_save = run / "checkpoints" / ".last.pt.partial-99999999"  # as a SIGKILL mid-save leaves it
    killed_save.write_bytes(b"half a checkpoint")
    train_main(["--resume", "--out", str(run), f"steps={step + 2}"])
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == step + 2
    assert not killed_save.exists()


def test_only_temporary_files_of_dead_processes_are_removed(tmp_path):
    from gnsim.atomic import remove_stale_partials

    live = tmp_path / f".train.h5.partial-{os.getppid()}"  # a second writer, still running
    dead = tmp_path / ".train.h5.partial-99999999"
    staging = tmp_path / ".water.partial-99999998"  # a converter's staging folder
    staging.mkdir()
    for path in (live, dead):
        path.write_bytes(b"")
    assert sorted(remove_stale_partials(tmp_path)) == sorted([dead, staging])
    assert live.exists()
