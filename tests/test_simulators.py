"""Scenes, `simulators.simulate`, and the `python -m simulators.generate` command."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import warp as wp

from gnsim.dataset import read_metadata, split_file, validate
from simulators import SceneError, SimulationError, load_scene, parse_scene, simulate
from simulators.generate import generate, main
from simulators.recipes import RECIPES
from simulators.scene import sample_blocks
from simulators.simulate import build_solver

ISSUE_SCENE = {
    "dim": 2,
    "domain": [[0, 0], [0.6, 0.2]],
    "particle_spacing": 0.002,
    "frames": 100,
    "frame_dt": 0.002,
    "walls": "slip",
    "gravity": [0, -9.81],
    "blocks": [
        {"material": "water", "box": [[0, 0], [0.057, 0.114]], "velocity": [0, 0], "params": {}}
    ],
    "obstacles": [],
}
ROOT = Path(__file__).resolve().parents[1]


def small(scene: dict, **changes) -> dict:
    return {**scene, "particle_spacing": 0.006, "frames": 8, **changes}


# ---------------------------------------------------------------------------------------------
# Scenes


@pytest.mark.parametrize(
    "change, key",
    [
        ({"dim": 4}, "scene.dim"),
        ({"domain": [[0, 0], [0.6]]}, "scene.domain[1]"),
        ({"particle_spacing": -1}, "scene.particle_spacing"),
        ({"frames": 1}, "scene.frames"),
        ({"walls": "bouncy"}, "scene.walls"),
        (
            {"blocks": [{"material": "lava", "box": [[0, 0], [0.1, 0.1]]}]},
            "scene.blocks[0].material",
        ),
        (
            {
                "blocks": [
                    {
                        "material": "sand",
                        "box": [[0, 0], [0.1, 0.1]],
                        "params": {"friction_angle": 95},
                    }
                ]
            },
            "scene.blocks[0].params.friction_angle",
        ),
        (
            {
                "blocks": [
                    {"material": "water", "box": [[0, 0], [0.1, 0.1]], "params": {"viscosty": 1}}
                ]
            },
            "scene.blocks[0].params: unknown key 'viscosty'",
        ),
        ({"obstacles": [{"ramp": [[0.1, 0.1], [0.1, 0.1]]}]}, "scene.obstacles[0].ramp"),
        ({"gravity": [0, "down"]}, "scene.gravity[1]"),
        ({"seeding": "poisson"}, "scene.seeding"),
        ({"seed": -1}, "scene.seed"),
    ],
)
def test_scene_errors_name_the_key(change, key):
    with pytest.raises(SceneError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_scene({**ISSUE_SCENE, **change})


def test_missing_key_is_named():
    scene = dict(ISSUE_SCENE)
    del scene["frame_dt"]
    with pytest.raises(SceneError, match=r"scene\.frame_dt: missing"):
        parse_scene(scene)


def test_yaml_scene_reads_like_json(tmp_path):
    yaml = pytest.importorskip("yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(ISSUE_SCENE))
    (tmp_path / "s.json").write_text(json.dumps(ISSUE_SCENE))
    a, b = load_scene(tmp_path / "s.yaml"), load_scene(tmp_path / "s.json")
    assert a.source == b.source and a.particle_spacing == 0.002


def test_random_seeding_puts_one_particle_per_spacing_volume_uniformly_over_each_block():
    """A box gets round(area / spacing^2) particles, spread uniformly; a later sphere only its part
    outside the box, at the same density; a block wholly covered gets none. The same seed gives the
    same particles, another seed others."""
    blocks = [{"material": "sand", "box": [[0.1, 0.1], [0.5, 0.5]]},
              {"material": "water", "sphere": {"center": [0.5, 0.5], "radius": 0.2}},
              {"material": "goop", "box": [[0.2, 0.2], [0.3, 0.3]]}]
    scene = {"dim": 2, "domain": [[0, 0], [1, 1]], "particle_spacing": 0.01, "frames": 2, "frame_dt": 0.01,
             "blocks": blocks, "seeding": "random", "seed": 3}
    x, v, owner = sample_blocks(parse_scene(scene))
    counts = np.bincount(owner, minlength=3)
    assert counts[0] == 1600 and counts[2] == 0 and v.shape == x.shape
    outside_box = np.pi * 0.2**2 * 3 / 4 / 0.01**2  # 942 expected, binomial spread ~20
    assert abs(counts[1] / outside_box - 1) < 0.06
    in_box = np.all((x >= 0.1) & (x <= 0.5), axis=1)
    assert in_box[owner == 0].all() and not in_box[owner == 1].any()
    assert np.all(np.linalg.norm(x[owner == 1] - 0.5, axis=1) <= 0.2)
    sand = x[owner == 0]  # uniform: a quarter of the block's particles in each quadrant, within noise
    assert np.all(np.abs(np.bincount(2 * (sand[:, 0] > 0.3) + (sand[:, 1] > 0.3)) / len(sand) - 0.25) < 0.03)
    again, _, _ = sample_blocks(parse_scene(scene))
    other, _, _ = sample_blocks(parse_scene(scene | {"seed": 4}))
    assert np.array_equal(x, again) and not np.array_equal(x[:1600], other[:1600])


def test_random_seeding_of_a_block_behind_a_same_shaped_polygon_ends():
    """A box on a polygon with the same edges has nothing left to fill: no particles, no endless draw."""
    square = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
    scene = {"dim": 2, "domain": [[-0.005, -0.005], [1, 1]], "particle_spacing": 0.01, "frames": 2,
             "frame_dt": 0.01, "seeding": "random",
             "blocks": [{"material": "sand", "polygon": square}, {"material": "water", "box": [[0.1, 0.1], [0.5, 0.5]]}]}
    _, _, owner = sample_blocks(parse_scene(scene))
    assert abs(np.sum(owner == 0) / 1600 - 1) < 0.05 and np.sum(owner == 1) < 5


# ---------------------------------------------------------------------------------------------
# simulate


def test_simulate_returns_float32_positions_and_gns_types():
    position, particle_type = simulate(small(ISSUE_SCENE, boundary_particles="none"), device="cpu")
    # 0.057 x 0.114 m at 6 mm: lattice points at 3 mm + 6 mm k, 10 x 19 of them in the box.
    assert position.shape == (8, 10 * 19, 2) and position.dtype == np.float32
    assert particle_type.dtype == np.int64 and set(particle_type) == {5}
    assert position[-1, :, 1].mean() < position[0, :, 1].mean()  # it falls
    assert (
        np.all(position >= 0)
        and np.all(position[..., 0] <= 0.6)
        and np.all(position[..., 1] <= 0.2)
    )


def test_obstacles_and_walls_appear_as_static_boundary_particles():
    scene = small(
        ISSUE_SCENE,
        obstacles=[
            {"ramp": [[0.2, 0.05], [0.4, 0.02]], "thickness": 0.02},
            {"cylinder": {"center": [0.5, 0.1], "radius": 0.03}},
            {"box": [[0.1, 0.0], [0.15, 0.03]]},
        ],
    )
    position, particle_type = simulate(scene, device="cpu")
    boundary = particle_type == 3
    walls_only, _ = simulate(small(ISSUE_SCENE, boundary_particles="walls"), device="cpu")
    assert boundary.sum() > walls_only.shape[1] - 10 * 19  # obstacles add particles to the walls'
    assert np.array_equal(position[0, boundary], position[-1, boundary])
    assert np.all(particle_type[: (~boundary).sum()] == 5)  # material particles come first


def test_same_scene_gives_identical_positions():
    a, _ = simulate(small(ISSUE_SCENE), device="cpu")
    b, _ = simulate(small(ISSUE_SCENE), device="cpu")
    assert a.tobytes() == b.tobytes()


# Every material and an obstacle, so that each kernel path runs.
MIXED_SCENE = small(
    ISSUE_SCENE,
    blocks=[
        {"material": "water", "box": [[0, 0], [0.05, 0.1]]},
        {"material": "sand", "box": [[0.05, 0], [0.1, 0.05]]},
        {"material": "goop", "sphere": {"center": [0.2, 0.1], "radius": 0.03}, "velocity": [0, -1]},
    ],
    obstacles=[{"cylinder": {"center": [0.3, 0.05], "radius": 0.03}}],
)


def test_gather_p2g_agrees_with_scatter():
    # CUDA's P2G (each node gathers from per-cell particle lists) against CPU's (particles
    # scatter), both run here on CPU: the same sums in another order.
    scene = parse_scene(MIXED_SCENE)
    positions = []
    for gather in (False, True):
        solver, _, dt, substeps = build_solver(scene, "cpu", gather=gather)
        start = solver.positions().copy()
        for _ in range(5 * substeps):
            solver.substep(dt)
        positions.append(solver.positions())
    assert np.abs(positions[0] - start).max() > 0.005  # it moved
    assert np.abs(positions[1] - positions[0]).max() < 1e-5


@pytest.mark.skipif(not wp.is_cuda_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu_and_repeats_bit_for_bit():
    cpu, _ = simulate(MIXED_SCENE, device="cpu")
    cuda, _ = simulate(MIXED_SCENE, device="cuda")
    again, _ = simulate(MIXED_SCENE, device="cuda")
    assert cuda.tobytes() == again.tobytes()
    assert np.abs(cuda - cpu).max() < 1e-4  # float rounding, far below the 6 mm particle spacing


def test_mixture_and_3d_scenes_run():
    mixture = small(
        ISSUE_SCENE,
        blocks=[
            {"material": "water", "box": [[0, 0], [0.05, 0.1]]},
            {
                "material": "sand",
                "box": [[0.05, 0], [0.1, 0.05]],
                "params": {"friction_angle": 35, "cohesion": 50},
            },
            {
                "material": "goop",
                "sphere": {"center": [0.2, 0.1], "radius": 0.03},
                "velocity": [0, -1],
            },
        ],
        boundary_particles="none",
    )
    position, particle_type = simulate(mixture, device="cpu")
    assert set(particle_type) == {5, 6, 7} and np.isfinite(position).all()
    cube = {
        "dim": 3,
        "domain": [[0, 0, 0], [0.2, 0.2, 0.2]],
        "particle_spacing": 0.01,
        "frames": 6,
        "frame_dt": 0.005,
        "blocks": [{"material": "sand", "box": [[0.05, 0.05, 0.05], [0.1, 0.1, 0.1]]}],
        "obstacles": [{"cylinder": {"center": [0.15, 0.05, 0.1], "radius": 0.02}}],
        "boundary_particles": "none",
    }
    position, particle_type = simulate(cube, device="cpu")
    assert position.shape == (6, 125, 3) and position[-1, :, 1].mean() < position[0, :, 1].mean()


def test_instability_names_the_frame_and_a_cause():
    # A frame of 0.1 s in one substep: 60x the CFL limit of water's 45 m/s sound speed.
    with pytest.raises(SimulationError, match=r"frame \d+: .*likely cause"):
        simulate(small(ISSUE_SCENE, frame_dt=0.1, substeps=1), device="cpu")


# ---------------------------------------------------------------------------------------------
# generate


def test_generated_dataset_is_accepted_by_the_gnsim_reader(tmp_path):
    generate(
        "water",
        tmp_path / "water",
        splits={"train": 2, "valid": 1, "test": 1},
        frames=10,
        device="cpu",
    )
    metadata = validate(tmp_path / "water")
    # `small` saves every other frame of the published 0.0025 s spacing.
    assert metadata["dim"] == 2 and metadata["sequence_length"] == 9 and metadata["dt"] == 0.005
    # About 10 particles across the connectivity diameter.
    assert metadata["default_connectivity_radius"] * 2 / metadata[
        "particle_spacing"
    ] == pytest.approx(10)
    assert metadata["gravity"] == [
        0.0,
        -9.81,
    ]  # read by the constant-velocity-plus-gravity baseline
    trajectory = split_file(tmp_path / "water", "train")[0]
    assert 63 <= trajectory.position.shape[1] <= 150  # small water: 2 cm particles
    assert sorted(p.name for p in (tmp_path / "water").iterdir()) == [
        "metadata.json",
        "test.h5",
        "train.h5",
        "valid.h5",
    ]


def test_same_seed_gives_identical_bytes(tmp_path):
    for name in ("a", "b"):
        generate(
            "multi-material",
            tmp_path / name,
            splits={"train": 2, "valid": 0, "test": 0},
            frames=8,
            seed=7,
            device="cpu",
        )
    assert (tmp_path / "a/train.h5").read_bytes() == (tmp_path / "b/train.h5").read_bytes()
    assert (tmp_path / "a/metadata.json").read_bytes() == (
        tmp_path / "b/metadata.json"
    ).read_bytes()
    generate(
        "multi-material",
        tmp_path / "c",
        splits={"train": 2, "valid": 0, "test": 0},
        frames=8,
        seed=8,
        device="cpu",
    )
    assert (tmp_path / "a/train.h5").read_bytes() != (tmp_path / "c/train.h5").read_bytes()


def test_shards_assemble_into_the_unsharded_dataset(tmp_path):
    options = {
        "splits": {"train": 3, "valid": 1, "test": 1},
        "frames": 8,
        "seed": 3,
        "device": "cpu",
    }
    generate("sand-ramps", tmp_path / "whole", **options)
    for k in (1, 0):  # any order; the last one to finish assembles
        generate("sand-ramps", tmp_path / "sharded", shard=(k, 2), **options)
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == [
        "metadata.json",
        "test.h5",
        "train.h5",
        "valid.h5",
    ]
    assert read_metadata(tmp_path / "sharded") == read_metadata(tmp_path / "whole")
    for split in ("train", "valid", "test"):
        whole, sharded = (
            split_file(tmp_path / "whole", split),
            split_file(tmp_path / "sharded", split),
        )
        assert len(whole) == len(sharded)
        for k in range(len(whole)):
            assert np.array_equal(whole[k].position, sharded[k].position)
            assert np.array_equal(whole[k].particle_type, sharded[k].particle_type)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_a_valid_scene(name):
    rng = np.random.default_rng(0)
    scene = parse_scene(RECIPES[name].scene(rng, "small", frames=8))
    assert scene.dim == RECIPES[name].dim
    source = {**scene.source, "frames": 3 if scene.dim == 2 else 2}
    if "relaxation" in source:  # an SPH recipe's relaxed start: 10 steps show it runs
        source["relaxation"] = {**source["relaxation"], "steps": 10}
    _, particle_type = simulate(source, device="cpu")
    count = (particle_type != 3).sum()
    low, high = RECIPES[name].sizes["small"].particles
    assert 0.8 * low <= count <= 1.1 * high, count


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "simulators.generate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_lists_recipes_and_rejects_mistakes_in_one_line(tmp_path, capsys):
    listing = run_cli("--list")
    assert listing.returncode == 0 and all(name in listing.stdout for name in RECIPES)
    assert main(["lava"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: unknown recipe 'lava' (known: " + ", ".join(RECIPES) + ")"
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**ISSUE_SCENE, "walls": "bouncy"}))
    assert main(["--scene", str(bad), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "scene.walls" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_scene_writes_one_trajectory_and_unstable_runs_leave_nothing(tmp_path, capsys):
    good = tmp_path / "dam.json"
    good.write_text(json.dumps(small(ISSUE_SCENE)))
    assert main(["--scene", str(good), "--out", str(tmp_path / "dam"), "--device", "cpu"]) == 0
    assert split_file(tmp_path / "dam", "train").names == ["00000"]
    assert read_metadata(tmp_path / "dam")["gravity"] == [0.0, -9.81]
    assert read_metadata(tmp_path / "dam")["scene"]["domain"] == ISSUE_SCENE["domain"]
    unstable = tmp_path / "unstable.json"
    unstable.write_text(json.dumps(small(ISSUE_SCENE, frame_dt=0.1, substeps=1)))
    assert (
        main(["--scene", str(unstable), "--out", str(tmp_path / "unstable"), "--device", "cpu"])
        == 1
    )
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: train trajectory 00000, frame ") and "likely cause" in error
    assert len(error.splitlines()) == 1
    assert not any((tmp_path / "unstable").glob("*"))


def test_terminated_run_leaves_no_file_and_the_next_run_completes(tmp_path):
    out = tmp_path / "water"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulators.generate",
            "water",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--num-train",
            "50",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list(out.glob(".train.h5.partial-*")):  # until the first trajectory is being written
        assert time.monotonic() < deadline and run.poll() is None, "no trajectory written"
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 130, run.stderr.read()[-2000:]
    assert list(out.iterdir()) == []
    (out / ".train.h5.partial-99999999").write_bytes(
        b"left by a killed run"
    )  # SIGKILL leaves these
    assert (
        main(
            [
                "water",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--num-train",
                "1",
                "--num-valid",
                "0",
                "--num-test",
                "0",
                "--frames",
                "8",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "train.h5"]


def test_shard_comes_from_the_flag_or_torchrun(monkeypatch):
    from simulators.generate import _parse_shard

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert _parse_shard(None) == (0, 1)
    assert _parse_shard("2/4") == (2, 4)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert _parse_shard(None) == (3, 8)
    for bad in ("4/4", "a/b", "1"):
        with pytest.raises(ValueError, match="--shard"):
            _parse_shard(bad)


def test_more_shards_than_trajectories_still_assemble(tmp_path):
    options = {
        "splits": {"train": 1, "valid": 2, "test": 0},
        "frames": 8,
        "seed": 5,
        "device": "cpu",
    }
    for k in range(3):  # shard 1 holds only a validation trajectory, shard 2 nothing
        generate("goop", tmp_path / "sharded", shard=(k, 3), **options)
    generate("goop", tmp_path / "whole", **options)
    assert read_metadata(tmp_path / "sharded") == read_metadata(tmp_path / "whole")
    assert not (tmp_path / "sharded" / ".shards").exists()
