"""Hostile, broken and interrupted inputs (issue 23): each is built here, and each gets a one-line
error that leaves nothing behind. docs/reliability.md lists them; keep the two in step."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gnsim import DatasetError, DatasetWriter, validate
from gnsim.convert.__main__ import main as convert_main
from tests.conftest import (
    BOUNDS,
    CONNECTIVITY_RADIUS,
    FRAME_DT,
    falling_block,
    write_dataset,
)
from tests.test_training import TINY, run_main
from training.train import main as train_main

pytestmark = pytest.mark.usefixtures("single_thread")


class Hostile:
    """Unpickles to a shell command that creates the file `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_npz(folder: Path, marker: Path) -> Path:
    """A gns npz dataset whose trajectory's particle type is an object that runs a command."""
    folder.mkdir()
    metadata = {"bounds": [[0, 1], [0, 1]], "sequence_length": 9, "dim": 2, "dt": 0.01,
                "default_connectivity_radius": 0.1}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    item = np.empty(1, dtype=object)
    item[0] = (np.zeros((10, 3, 2), np.float32), Hostile(marker))
    np.savez(folder / "train.npz", gns_data=item)
    return folder


def test_a_hostile_npz_is_refused_by_the_converter(tmp_path, capsys):
    source = hostile_npz(tmp_path / "gns", tmp_path / "PWNED")
    assert convert_main([str(source), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    assert error[0] == (
        f"error: {source / 'train.npz'}: 'gns_data' unreadable "
        "(refused to load posix.system: not numpy array data)"
    )
    assert not (tmp_path / "PWNED").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gns"]


def test_a_hostile_npz_is_refused_by_the_trainer(tmp_path, capsys):
    source = hostile_npz(tmp_path / "gns", tmp_path / "PWNED")
    with pytest.raises(SystemExit):
        train_main(["--config", "quick", "--data", str(source), "--out", str(tmp_path / "run"),
                    *TINY, "steps=2"])
    said, message = capsys.readouterr().err.strip().splitlines()
    assert said == f"converting {source} into {tmp_path / 'gns.gnsim'}"  # said before reading
    assert "refused to load posix.system: not numpy array data" in message
    assert not (tmp_path / "PWNED").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gns"]


@pytest.mark.parametrize(
    "override, error",
    [
        ("batch_size=0", "config key 'batch_size' must be >= 1, got 0"),
        ("learning_rate=-1", "config key 'learning_rate' must be > 0, got -1.0"),
        ("connectivity_radius=-0.1", "config key 'connectivity_radius' must be > 0, got -0.1"),
        ("steps=-5", "config key 'steps' must be >= 1, got -5"),
        ("noise_std=-1", "config key 'noise_std' must be >= 0, got -1.0"),
        ("ema_decay=1", "config key 'ema_decay' must be in [0, 1), got 1.0"),
        ("amp=fp8", "config key 'amp' must be one of auto, bf16, off, got 'fp8'"),
        ("aggregation=[1,2]",
         "config key 'aggregation' in the command line must be a string, got [1, 2]"),
    ],
)
def test_a_config_value_out_of_range_is_one_line_and_leaves_no_run(
    tmp_path, capsys, falling_blocks, override, error
):
    message = run_main(["--data", falling_blocks, "--out", str(tmp_path / "run"), override], capsys)
    assert message == f"error: {error}"
    assert not (tmp_path / "run").exists()


def test_metadata_whose_gravity_disagrees_with_dim_is_one_line(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", train=1, valid=0, gravity=[0.0, -9.81, 0.0])
    message = run_main(["--config", "quick", "--data", data, "--out", str(tmp_path / "run"),
                        *TINY], capsys)
    assert message.endswith("(metadata 'gravity' must have 2 entries, got [0.0, -9.81, 0.0])")
    assert not (tmp_path / "run").exists()


def test_a_zero_byte_checkpoint_is_one_line(tmp_path, capsys, falling_blocks):
    empty = tmp_path / "empty.pt"
    empty.touch()
    message = run_main(["--config", "quick", "--data", falling_blocks, "--out",
                        str(tmp_path / "run"), *TINY, f"init_from={empty}"], capsys)
    assert message.startswith(f"error: {empty}: not a readable checkpoint (")


def far_outside_dataset(folder: Path, far: float = 1e30) -> str:
    """The falling blocks with one particle leaping between +-`far` metres from frame 10 on."""
    position, particle_type = falling_block(0)
    position[10:, 0, 0] = far * (-1.0) ** np.arange(len(position) - 10)
    with DatasetWriter(folder, dim=2, dt=FRAME_DT, bounds=BOUNDS,
                       connectivity_radius=CONNECTIVITY_RADIUS) as writer:
        writer.add("train", position, particle_type)
        writer.add("valid", *falling_block(1000))
    return str(folder)


def test_validate_refuses_positions_far_outside_the_bounds(tmp_path):
    data = far_outside_dataset(tmp_path / "data")
    with pytest.raises(DatasetError) as error:
        validate(data)
    assert str(error.value) == (
        f"{tmp_path / 'data/train.h5'} trajectory 00000: particle 0 is at 1e+30 on axis 0 in "
        "frame 10, more than 1 box size outside the bounds [0.0, 1.0]"
    )


# Velocities of 6e38 m/frame overflow float32: the loss is NaN from step 1.
@pytest.mark.parametrize("data, override", [("far", "steps=5"), ("blocks", "learning_rate=10")])
def test_training_stops_on_divergence_keeping_the_last_good_checkpoint(
    tmp_path, capsys, falling_blocks, data, override
):
    data = far_outside_dataset(tmp_path / "data", 3e38) if data == "far" else falling_blocks
    run = tmp_path / "run"
    message = run_main(["--config", "quick", "--data", data, "--out", str(run), *TINY,
                        "checkpoint_every=1", "batch_size=1", override], capsys)
    assert message.startswith("error: training diverged at step ")
    step = int(message.split("step ")[1].split(":")[0])
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == (["last.pt"] if step > 1 else [])
    if step > 1:
        checkpoint = torch.load(run / "checkpoints/last.pt", weights_only=True)
        assert checkpoint["step"] == step - 1
        assert all(torch.isfinite(w).all() for w in checkpoint["model"].values())
