"""Hostile, broken and interrupted inputs (issue 23): each is built here, and each gets a one-line
error that leaves nothing behind. docs/reliability.md lists them; keep the two in step."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gnsim import DatasetError, DatasetWriter, split_file, validate
from gnsim.convert.__main__ import main as convert_main
from simulators.generate import generate
from simulators.generate import main as generate_main
from tests.conftest import (
    BOUNDS,
    CONNECTIVITY_RADIUS,
    FRAME_DT,
    falling_block,
    write_dataset,
)
from tests.test_convert import deepmind_dataset, reference_masked_crc
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


def test_a_split_file_from_another_write_is_refused(tmp_path):
    # The state a crash between renaming train.h5 and writing metadata.json leaves: a new
    # train.h5 beside the old metadata.json.
    old = write_dataset(tmp_path / "old", train=1, valid=1, seed=0)
    new = write_dataset(tmp_path / "new", train=1, valid=1, seed=5)
    (Path(new) / "train.h5").replace(Path(old) / "train.h5")
    with pytest.raises(DatasetError) as error:
        validate(old)
    assert str(error.value) == (
        f"{Path(old) / 'train.h5'}: its content differs from the one {Path(old) / 'metadata.json'} "
        "was written with (an interrupted or mixed write); regenerate the dataset"
    )


def test_a_split_file_left_by_an_earlier_write_is_refused(tmp_path):
    folder = tmp_path / "data"
    write_dataset(folder, train=1, valid=1, seed=0)
    write_dataset(folder, train=1, valid=0, seed=5)  # no valid split this time
    with pytest.raises(DatasetError) as error:
        split_file(folder, "valid")
    assert str(error.value) == (
        f"{folder / 'valid.h5'}: not part of the dataset {folder / 'metadata.json'} describes "
        "(left by an earlier write into this folder); remove it or regenerate"
    )


GENERATE = {"frames": 8, "device": "cpu"}


def test_regenerating_with_fewer_splits_removes_the_stale_ones(tmp_path):
    generate("water", tmp_path / "water", splits={"train": 1, "valid": 1, "test": 0}, **GENERATE)
    generate("water", tmp_path / "water", splits={"train": 1, "valid": 0, "test": 0}, **GENERATE)
    assert sorted(p.name for p in (tmp_path / "water").iterdir()) == ["metadata.json", "train.h5"]
    validate(tmp_path / "water")


@pytest.mark.parametrize(
    "recipe, seed, difference",
    [("water", 99, "seed=99, but {first} has seed=0"),
     ("sand", 0, "recipe='sand', but {first} has recipe='water'")],
)
def test_shards_built_with_other_arguments_are_not_merged(tmp_path, recipe, seed, difference):
    out = tmp_path / "data"
    splits = {"train": 2, "valid": 0, "test": 0}
    generate("water", out, splits=splits, shard=(0, 2), **GENERATE)
    with pytest.raises(DatasetError) as raised:
        generate(recipe, out, splits=splits, seed=seed, shard=(1, 2), **GENERATE)
    first = out / ".shards/0-of-2"
    assert str(raised.value) == (
        f"{out / '.shards/1-of-2'}: built with {difference.format(first=first)}; rerun with "
        f"the same arguments or remove {out / '.shards'}"
    )
    assert sorted(p.name for p in out.iterdir()) == [".shards"]  # nothing merged


def test_a_finished_shard_is_not_skipped_for_a_run_with_other_arguments(tmp_path):
    out = tmp_path / "data"
    splits = {"train": 2, "valid": 0, "test": 0}
    generate("water", out, splits=splits, shard=(0, 2), **GENERATE)
    with pytest.raises(DatasetError) as raised:
        generate("sand", out, splits=splits, shard=(0, 2), **GENERATE)
    shard = out / ".shards/0-of-2"
    assert str(raised.value) == (
        f"{shard}: built with recipe='water', but this run has recipe='sand'; rerun with the same "
        f"arguments or remove {out / '.shards'}"
    )


SCENE = {
    "dim": 2,
    "domain": [[0, 0], [1, 1]],
    "particle_spacing": 0.05,
    "frames": 8,
    "frame_dt": 0.002,
    "blocks": [{"material": "water", "box": [[0.1, 0.1], [0.4, 0.4]]}],
}
MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def generate_main_error(tmp_path, capsys, argv) -> str:
    """The one line `python -m simulators.generate ARGV` prints; it leaves no output folder."""
    assert generate_main([*argv, "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: "), error
    assert not (tmp_path / "out").exists()
    return error[0]


def scene_error(tmp_path, capsys, scene, suffix=".json") -> str:
    path = tmp_path / f"scene{suffix}"
    path.write_text(scene if isinstance(scene, str) else json.dumps(scene))
    message = generate_main_error(tmp_path, capsys, ["--scene", str(path)])
    return message.removeprefix("error: ").removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    "change, error",
    [
        ({"gravty": [0, 9.81]}, "scene.gravty: unknown key (did you mean 'gravity'?)"),
        ({"blocks": [{**SCENE["blocks"][0], "velocty": [1, 0]}]},
         "scene.blocks[0].velocty: unknown key (did you mean 'velocity'?)"),
        ({"blocks": [{"material": "water", "box": [[0.8, 0.1], [1.2, 0.4]]}]},
         ("scene.blocks[0].box: reaches outside the domain [[0.0, 0.0], [1.0, 1.0]] (spans "
          "[[0.8, 0.1], [1.2, 0.4]]); its particles there would be dropped")),
    ],
)
def test_a_scene_key_that_would_be_ignored_is_one_line(tmp_path, capsys, change, error):
    assert scene_error(tmp_path, capsys, {**SCENE, **change}) == error


def test_a_scene_too_fine_for_the_memory_is_refused_before_allocating(tmp_path, capsys):
    message = scene_error(tmp_path, capsys, {**SCENE, "particle_spacing": 1e-5})
    assert message.startswith("scene.particle_spacing: the particle lattice would need 447 GiB")
    assert message.endswith(f"more than half of this machine's {MEMORY:.3g} GiB of memory")


def test_a_scene_of_too_many_frames_is_refused_before_allocating(tmp_path, capsys):
    message = scene_error(tmp_path, capsys, {**SCENE, "frames": 10**9})
    assert message.startswith("scene.frames: the trajectory of 36 particles would need 268 GiB")


def test_yaml_aliases_in_a_scene_are_refused(tmp_path, capsys):
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    assert scene_error(tmp_path, capsys, bomb, ".yaml") == (
        "not valid yaml (aliases are refused in scenes (*a at line 2))"
    )


@pytest.mark.parametrize("argv", [["--num-train", "1000000000"], ["--frames", "1000000000"]])
def test_a_dataset_too_big_for_the_disk_is_refused_before_simulating(tmp_path, capsys, argv):
    message = generate_main_error(tmp_path, capsys, ["water", *argv])
    assert message.startswith(f"error: {tmp_path / 'out'}: the trajectories would need at least ")
    assert message.endswith("GiB free on its disk")


def test_a_tfrecord_header_claiming_a_terabyte_is_refused_before_reading(tmp_path, capsys):
    deepmind_dataset(tmp_path / "src")
    length = struct.pack("<Q", 2**40)
    path = tmp_path / "src/train.tfrecord"
    path.write_bytes(length + struct.pack("<I", reference_masked_crc(length)) + b"0123456789")
    assert convert_main([str(tmp_path / "src"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"error: {path} record 0: truncated record ({2**40 + 4} bytes expected after the header, "
        "10 found)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
