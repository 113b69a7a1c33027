"""Hostile, broken and interrupted inputs (issue 23): each is built here, and each gets a one-line
error that leaves nothing behind. docs/reliability.md lists them; keep the two in step."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from benchmarks.deepmind_tfrecord import reference_masked_crc
from gnsim import DatasetError, DatasetWriter
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
from tests.test_convert import deepmind_dataset
from tests.test_training import TINY, run_main

pytestmark = pytest.mark.usefixtures("single_thread")
GENERATE = {"frames": 8, "device": "cpu"}


def test_metadata_whose_gravity_disagrees_with_dim_is_one_line(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", train=1, valid=0)  # then edited as a foreign file may be
    metadata = json.loads((tmp_path / "data" / "metadata.json").read_text())
    (tmp_path / "data" / "metadata.json").write_text(json.dumps({**metadata, "gravity": [0.0, -9.81, 0.0]}))
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


def test_an_obstacle_wholly_outside_the_domain_is_refused():
    from simulators.scene import SceneError, parse_scene

    scene = {"dim": 2, "domain": [[0, 0], [1, 1]], "particle_spacing": 0.05, "frames": 3, "frame_dt": 0.01,
             "blocks": [{"material": "water", "box": [[0.2, 0.2], [0.4, 0.4]]}],
             "obstacles": [{"box": [[1.5, 0.0], [2.0, 0.5]]}]}
    with pytest.raises(SceneError, match=r"scene.obstacles\[0\]: lies wholly outside the domain"):
        parse_scene(scene)
    scene["obstacles"] = [{"box": [[0.9, 0.0], [1.5, 0.5]]}]  # partly inside: an obstacle may reach past a wall
    parse_scene(scene)


def test_a_render_too_big_for_the_memory_is_refused_before_allocating(tmp_path, capsys):
    from viz.render import main as render_main

    data = write_dataset(tmp_path / "data", train=1, valid=0, frames=8)
    assert render_main([f"{data}/train.h5", "--size", "30000", "--out", str(tmp_path / "sheet.png")]) == 2
    error = capsys.readouterr().err
    assert "--size 30000: rendering 4 frames of 1 panels would need" in error and error.count("\n") == 1
    assert not (tmp_path / "sheet.png").exists()
