"""Hostile files and careless runs (issue 33): each input is built here, small, and each gets a
one-line error naming the file and field, leaving nothing behind. docs/reliability.md lists them."""

import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gnsim.convert.__main__ import main as convert_main
from tests.conftest import write_dataset
from tests.test_convert import lagrangebench_dataset
from tests.test_training import TINY, run_main
from training.train import main as train_main
from viz.export import main as export_main
from viz.render import main as render_main

pytestmark = pytest.mark.usefixtures("single_thread")


def one_line(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error, error
    return error


def forget_digests(folder: Path) -> None:
    """Drop `split_digests`, as a dataset of another tool (or a crafted one) has none."""
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["split_digests"]
    (folder / "metadata.json").write_text(json.dumps(metadata))


def replace_field(file: Path, key: str, make) -> None:
    """Replace (or add) `key` of trajectory 00000 with `make(group, key, like)`, `like` the old array."""
    with h5py.File(file, "r+") as h5:
        group = h5["00000"]
        like = group[key][()] if key in group else None
        if key in group:
            del group[key]
        make(group, key, like)


def external(target: Path):
    def make(group, key, like):
        group.create_dataset(key, shape=like.shape, dtype=like.dtype,
                             external=[(str(target), 0, like.nbytes)])
    return make


def virtual(target: Path):
    def make(group, key, like):
        layout = h5py.VirtualLayout(shape=like.shape, dtype=like.dtype)
        layout[...] = h5py.VirtualSource(str(target), "00000/position", shape=like.shape)
        group.create_virtual_dataset(key, layout)
    return make


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(b"SECRET!!" * 10_000)
    return path


@pytest.mark.parametrize("how", ["external position", "external extra", "virtual position"])
def test_hdf5_data_kept_in_another_file_is_refused_by_every_reader(tmp_path, capsys, secret, how):
    data = Path(write_dataset(tmp_path / "data", train=2, valid=1))
    forget_digests(data)
    if how == "external position":
        replace_field(data / "train.h5", "position", external(secret))
    elif how == "external extra":  # not an array we use: read all the same, as an extra
        replace_field(data / "train.h5", "extra", lambda g, k, _: g.create_dataset(
            k, shape=(secret.stat().st_size,), dtype="u1", external=[(str(secret), 0, secret.stat().st_size)]))
    else:
        other = write_dataset(tmp_path / "other", train=1, valid=0)
        replace_field(data / "train.h5", "position", virtual(Path(other) / "train.h5"))
    field = "extra" if how == "external extra" else "position"
    kind = "a virtual dataset" if how.startswith("virtual") else "keeps its data in the external file"
    expected = f"error: {data / 'train.h5'} trajectory 00000: field {field!r} "

    assert convert_main([str(data), str(tmp_path / "out"), "--to", "npz"]) == 2
    message = one_line(capsys)
    assert message.startswith(expected) and kind in message, message
    assert not (tmp_path / "out").exists()

    message = run_main(["--config", "quick", "--data", str(data), "--out", str(tmp_path / "run"), *TINY], capsys)
    assert message.startswith(expected) and kind in message, message
    assert not (tmp_path / "run").exists()

    assert render_main([str(data / "train.h5"), "--out", str(tmp_path / "a.png")]) == 2
    message = one_line(capsys)
    assert message.startswith(expected) and kind in message, message
    with pytest.raises(SystemExit):
        export_main([str(data / "train.h5"), "--vtk", str(tmp_path / "vtk")])
    message = one_line(capsys)
    assert message.startswith(expected) and kind in message, message
    assert {p.name for p in tmp_path.iterdir()} == {"data", "secret"} | ({"other"} if "virtual" in how else set())


def test_lagrangebench_data_kept_in_another_file_is_refused(tmp_path, capsys, secret):
    lagrangebench_dataset(tmp_path / "src", [0, 0, 1])
    replace_field(tmp_path / "src/train.h5", "position", external(secret))
    assert convert_main([str(tmp_path / "src"), str(tmp_path / "out")]) == 2
    assert one_line(capsys) == (
        f"error: {tmp_path / 'src/train.h5'} record 00000: field 'position' keeps its data in the external "
        f"file {str(secret)!r} (refused)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret", "src"]


def huge_position(group, key, like):
    """4 TB declared in a few kilobytes: chunked, a fill value, no chunk written."""
    group.create_dataset(key, shape=(20, 5 * 10**10, 2), dtype="f4", chunks=(1, 1024, 2), fillvalue=0.5)


def test_a_huge_declared_shape_in_a_tiny_file_is_refused_before_allocating(tmp_path, capsys):
    data = Path(write_dataset(tmp_path / "data", train=2, valid=0))
    forget_digests(data)
    replace_field(data / "train.h5", "position", huge_position)
    assert (data / "train.h5").stat().st_size < 100_000
    expected = (f"error: {data / 'train.h5'} trajectory 00000: field 'position' of shape "
                "(20, 50000000000, 2) would need 7.45e+03 GiB, more than half of this machine's")

    assert convert_main([str(data), str(tmp_path / "out"), "--to", "npz"]) == 2
    assert one_line(capsys).startswith(expected)
    message = run_main(["--config", "quick", "--data", str(data), "--out", str(tmp_path / "run"), *TINY], capsys)
    assert message.startswith(expected)
    with pytest.raises(SystemExit):
        export_main([str(data / "train.h5"), "--vtk", str(tmp_path / "vtk")])
    assert one_line(capsys).startswith(expected)
    assert render_main([str(data / "train.h5"), "--out", str(tmp_path / "a.png")]) == 2
    assert one_line(capsys).startswith(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_the_memory_limit_is_overridable(tmp_path, capsys, monkeypatch):
    data = Path(write_dataset(tmp_path / "data", train=1, valid=0))
    monkeypatch.setenv("GNSIM_MEMORY_LIMIT", "1e-6")  # about 1 kB: less than the 30 x 54 x 2 positions
    assert convert_main([str(data), str(tmp_path / "out"), "--to", "npz"]) == 2
    assert one_line(capsys).endswith("more than the 1e-06 GiB GNSIM_MEMORY_LIMIT")
    monkeypatch.setenv("GNSIM_MEMORY_LIMIT", "lots")
    assert convert_main([str(data), str(tmp_path / "out"), "--to", "npz"]) == 2
    assert one_line(capsys).endswith("cannot be checked: GNSIM_MEMORY_LIMIT='lots' is not a positive number of GiB")


def npz_member(path: Path, shape: tuple[int, ...], data_bytes: int) -> None:
    """A gns folder's `train.npz` of one float32 member declaring `shape`, followed by
    `data_bytes` zero bytes, deflated (zeros shrink about 1000-fold)."""
    from tests.test_convert import gns_dataset

    gns_dataset(path.parent, "keys")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("simulation_trajectory_0.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
        for _ in range(data_bytes // 2**20):
            member.write(bytes(2**20))


@pytest.mark.parametrize("case", ["inflates past the limit", "header declares a terabyte"])
def test_an_npz_zip_bomb_is_refused_before_inflating(tmp_path, capsys, monkeypatch, case):
    path = tmp_path / "src/train.npz"
    if case == "inflates past the limit":  # 96 MiB in 100 KB, with a 64 MiB limit (as 2 GiB in 2 MB)
        monkeypatch.setenv("GNSIM_MEMORY_LIMIT", "0.0625")
        npz_member(path, (96 * 2**18,), 96 * 2**20)
        assert path.stat().st_size < 200_000
        detail = "member simulation_trajectory_0.npy would need 0.0938 GiB, more than the 0.0625 GiB"
    else:
        npz_member(path, (10**12,), 0)
        detail = "member simulation_trajectory_0.npy of shape (1000000000000,) would need 3.73e+03 GiB, more"
    assert convert_main([str(tmp_path / "src"), str(tmp_path / "out")]) == 2
    message = one_line(capsys)
    assert message.startswith(f"error: {path} record 0 ('simulation_trajectory_0'): unreadable ({detail}"), message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# 487 bytes: nine levels of nine aliases, 9**9 leaves (a "billion laughs") once anything walks it.
ALIAS_BOMB = "".join(
    [f"l0: &l0 [{', '.join(['1'] * 9)}]\n"]
    + [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, 9)]
    + ["learning_rate: *l8\n"]
)


def test_a_yaml_alias_bomb_is_refused_in_configs_resumed_runs_and_rollouts(tmp_path, capsys, falling_blocks):
    from training.rollout import main as rollout_main

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    message = run_main(["--config", str(bomb), "--data", falling_blocks, "--out", str(tmp_path / "run")], capsys)
    assert message == f"error: {bomb}: not valid YAML (aliases are refused in configs (*l0 at line 2))"
    assert not (tmp_path / "run").exists()

    run = tmp_path / "run"
    train_main(["--config", "quick", "--data", falling_blocks, "--out", str(run), *TINY, "steps=1"])
    (run / "config.yaml").write_text(ALIAS_BOMB)
    message = run_main(["--resume", "--out", str(run)], capsys)
    assert message == f"error: {run / 'config.yaml'}: not valid YAML (aliases are refused in configs (*l0 at line 2))"
    with pytest.raises(SystemExit) as exit_code:
        rollout_main([str(run)])
    assert exit_code.value.code == 2
    assert one_line(capsys).endswith(f"{run / 'config.yaml'}: not valid YAML (aliases are refused in configs "
                                     "(*l0 at line 2))")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A run folder of a tiny model trained for one step on the falling blocks."""
    folder = tmp_path_factory.mktemp("trained")
    data = write_dataset(folder / "data", train=2, valid=1)
    train_main(["--config", "quick", "--data", data, "--out", str(folder / "run"), *TINY, "steps=1"])
    return folder / "run"


@pytest.mark.parametrize("change, detail", [
    ({"message_passing_steps": 10**6}, "'message_passing_steps' must be an integer from 1 to 1000, got 1000000"),
    ({"message_passing_steps": 10**6, "shared_weights": True}, "'message_passing_steps' must be an integer"),
    ({"latent_size": 2**20}, ("(latent_size=1048576, mlp_hidden_size=16, mlp_num_hidden_layers=2, "
                              "message_passing_steps=2, input_frames=6) describes a model of 354,421,542 "
                              "numbers, but the checkpoint holds 8,262")),
    ({"message_passing_steps": 3}, "describes a model of "),
    ({"latent_size": "big"}, "cannot build its model ("),
])
def test_a_checkpoint_model_config_that_does_not_describe_its_weights_is_refused(
        tmp_path, capsys, trained_run, change, detail):
    import torch

    from training.rollout import main as rollout_main

    checkpoint = torch.load(trained_run / "checkpoints/last.pt", weights_only=True)
    checkpoint["model_config"].update(change)
    model = tmp_path / "model/model.pt"  # a shipped model folder
    model.parent.mkdir()
    torch.save(checkpoint, model)
    with pytest.raises(SystemExit) as exit_code:
        rollout_main([str(model.parent), "--data", str(trained_run.parent / "data"), "--split", "valid"])
    assert exit_code.value.code == 2
    message = one_line(capsys)
    assert message.startswith(f"error: {model}: ") and detail in message, message


def plant_link(folder: Path, name: str, target: Path) -> Path:
    """A link at the temporary name this process writes `folder/name` under, aimed at `target`."""
    from gnsim.atomic import temporary_path

    folder.mkdir(parents=True, exist_ok=True)
    link = temporary_path(folder / name)
    link.symlink_to(target)
    return link


def test_a_link_planted_at_a_temporary_name_is_replaced_not_written_through(tmp_path, falling_blocks):
    import torch

    from gnsim import LearnedSimulator, SimulatorConfig, read_metadata
    from gnsim.checkpoint import save_checkpoint
    from viz.export import export

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim_folder = tmp_path / "victim_folder"
    victim_folder.mkdir()
    out = tmp_path / "out"
    links = [plant_link(out, name, victim) for name in ("train.h5", "metadata.json")]
    links.append(plant_link(tmp_path / "checkpoints", "last.pt", victim))
    links.append(plant_link(tmp_path, "vtk", victim_folder))

    write_dataset(out, train=1, valid=0)
    metadata = read_metadata(falling_blocks)
    simulator = LearnedSimulator(SimulatorConfig(latent_size=8, mlp_hidden_size=8, message_passing_steps=1), metadata)
    save_checkpoint(tmp_path / "checkpoints/last.pt", simulator, torch.optim.Adam(simulator.parameters()), {},
                    metadata, step=1, best=0.0)
    export(out / "train.h5", tmp_path / "vtk")

    assert victim.read_bytes() == b"precious" and not any(victim_folder.iterdir())
    assert not any(link.is_symlink() or link.exists() for link in links)
    assert torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)["step"] == 1
    assert (tmp_path / "vtk/trajectory_00000.pvd").is_file()


MPM_SCENE = {"dim": 2, "domain": [[0, 0], [0.4, 0.4]], "particle_spacing": 0.01, "frames": 8, "frame_dt": 0.002,
             "blocks": [{"material": "water", "box": [[0.1, 0.1], [0.2, 0.2]]}]}
SPH_SCENE = {"solver": "sph", "dim": 2, "domain": [[0, 0], [0.1, 0.2]], "particle_spacing": 0.01, "frames": 8,
             "frame_dt": 0.02, "gravity": [0, -9.81],
             "fluid": {"density": 1000.0, "viscosity": 50.0, "reference_velocity": 2.0},
             "blocks": [{"box": [[0, 0], [0.1, 0.2]]}]}


@pytest.mark.parametrize("scene, change, expected", [
    (MPM_SCENE, {"grid_spacing": 2e-5}, "scene.grid_spacing: the grid of 4e+08 nodes would need 4.47 GiB"),
    (SPH_SCENE, {"particle_spacing": 1e-5}, "scene.particle_spacing: the particle lattice would need 8.95 GiB"),
    (SPH_SCENE, {"wall_layers": 10**7}, "scene.particle_spacing: the particle lattice would need 1.79e+07 GiB"),
    (SPH_SCENE, {"frames": 10**9}, "scene.frames: the trajectory of 416 particles would need 3.1e+03 GiB"),
])
def test_a_grid_or_sph_scene_too_big_for_the_memory_is_refused_before_allocating(
        tmp_path, capsys, monkeypatch, scene, change, expected):
    from tests.test_hostile_inputs import scene_error

    monkeypatch.setenv("GNSIM_MEMORY_LIMIT", "1")  # the 3.2 GB grid, refused on any machine
    assert scene_error(tmp_path, capsys, {**scene, **change}) == f"{expected}, more than the 1 GiB GNSIM_MEMORY_LIMIT"


def test_a_torn_last_line_in_metrics_jsonl_is_dropped_on_resume(tmp_path, falling_blocks):
    run = tmp_path / "run"
    train_main(["--config", "quick", "--data", falling_blocks, "--out", str(run), *TINY, "steps=2"])
    before = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(before + '{"step": 3, "loss": 0.0')  # a kill mid-write
    train_main(["--resume", "--out", str(run), "steps=3"])
    after = (run / "metrics.jsonl").read_text()
    assert after.startswith(before)
    assert {json.loads(line)["step"] for line in after[len(before):].splitlines()} == {3}


@pytest.mark.parametrize("override", ["learning_rate=nan", "learning_rate=.inf", "noise_std=-.inf",
                                      "connectivity_radius=.nan", "grad_clip=NaN", "ema_decay=nan"])
def test_nan_and_infinity_are_refused_for_every_number_key(tmp_path, capsys, falling_blocks, override):
    key = override.split("=")[0]
    message = run_main(["--config", "quick", "--data", falling_blocks, "--out", str(tmp_path / "run"), override],
                       capsys)
    assert message.startswith(f"error: config key {key!r} in the command line must be a finite number, got ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("key, value, error", [
    ("bounds", [[1.0, 0.0], [0.0, 1.0]], "'bounds' must have lo < hi on every axis, got [[1.0, 0.0], [0.0, 1.0]]"),
    ("dt", -0.01, "'dt' must be above 0, got -0.01"),
    ("default_connectivity_radius", 0, "'default_connectivity_radius' must be above 0, got 0"),
    ("vel_std", [-1.0, 1.0], "'vel_std' must be at least 0, got [-1.0, 1.0]"),
    ("acc_mean", [float("nan"), 0.0], "'acc_mean' must be finite, got [nan, 0.0]"),
    ("gravity", [0.0, float("-inf")], "'gravity' must be finite, got [0.0, -inf]"),
    ("bounds", [[0, "a"], [0, 1]], "'bounds' must be numbers, got [[0, 'a'], [0, 1]]"),
])
def test_metadata_numbers_are_checked_for_finiteness_order_and_sign(tmp_path, capsys, key, value, error):
    data = Path(write_dataset(tmp_path / "data", train=2, valid=1))
    metadata = json.loads((data / "metadata.json").read_text())
    (data / "metadata.json").write_text(json.dumps({**metadata, key: value}))
    message = run_main(["--config", "quick", "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "steps=2"],
                       capsys)
    assert f"{data / 'metadata.json'}: {error}" in message, message
    assert not (tmp_path / "run").exists()


def fill_value_position(group, key, like):
    group.create_dataset(key, shape=like.shape, dtype=like.dtype, chunks=(5, *like.shape[1:]), fillvalue=0.5)


def frozen_position(group, key, like):
    group[key] = np.broadcast_to(like[:1], like.shape)


def far_position(group, key, like):
    like[3, 7, 1] = 2.5  # 1.5 box sizes above the unit box
    group[key] = like


@pytest.mark.parametrize("make, error", [
    (fill_value_position, ("field 'position' stores 0 of its 6 chunks (the rest would read as its fill value: "
                           "it was never written)")),
    (frozen_position, "'position' never moves: every frame equals the first"),
    (far_position, "position[3, 7, 1] = 2.5 lies more than 1 box size outside the bounds [0.0, 1.0]"),
])
def test_positions_never_written_never_moving_or_far_outside_are_refused_on_read(tmp_path, capsys, make, error):
    data = Path(write_dataset(tmp_path / "data", train=2, valid=1))
    forget_digests(data)
    replace_field(data / "train.h5", "position", make)
    assert convert_main([str(data), str(tmp_path / "out"), "--to", "npz"]) == 2
    assert one_line(capsys) == f"error: {data / 'train.h5'} trajectory 00000: {error}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_shipping_over_a_model_folder_replaces_it_whole(tmp_path, trained_run, capsys):
    from training.ship import main as ship_main

    model = tmp_path / "models/tiny"
    model.mkdir(parents=True)
    for name in ("model.pt", "metrics.json", "rollout_0.gif"):  # an older model, its scorecard and GIF
        (model / name).write_bytes(b"old")
    ship_main([str(trained_run), str(model)])
    assert sorted(p.name for p in model.iterdir()) == [  # the new model and its run's state, only
        "command.txt", "config.yaml", "metrics.jsonl", "model.pt", "state.pt"]
    assert sorted(p.name for p in model.parent.iterdir()) == ["tiny"]  # no temporary left

    folder = tmp_path / "not_a_model"  # e.g. `models` given for `models/NAME`
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit):
        ship_main([str(trained_run), str(folder)])
    assert one_line(capsys).endswith(f"error: {folder}: exists and is not a model folder (no model.pt); choose another")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_a_folder_at_the_cache_name_that_gnsim_did_not_make_is_left_alone(tmp_path, monkeypatch, capsys):
    from gnsim.convert.pipeline import ensure_dataset

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lagrangebench_dataset(tmp_path / "src", [0, 0, 1])
    foreign = tmp_path / "src.gnsim"  # someone's own folder, with a gnsim-looking metadata.json
    foreign.mkdir()
    (foreign / "mine.txt").write_text("mine")
    (foreign / "metadata.json").write_text(json.dumps({"format_version": 1}))
    cache = ensure_dataset(tmp_path / "src")
    assert cache.parent == tmp_path / "cache/gnsim" and (cache / "train.h5").is_file()
    assert sorted(p.name for p in foreign.iterdir()) == ["metadata.json", "mine.txt"]
    assert ensure_dataset(tmp_path / "src") == cache  # and it is reused


def test_generate_refuses_a_folder_of_other_files_unless_overwrite(tmp_path, capsys):
    from simulators.generate import main as generate_main

    out = tmp_path / "w1"
    out.mkdir()
    (out / "metadata.json").write_text('{"mine": true}')  # someone's own files
    (out / "train.h5").write_bytes(b"not ours")
    argv = ["water", "--out", str(out), "--num-train", "1", "--num-valid", "0", "--num-test", "0",
            "--frames", "8", "--device", "cpu"]
    assert generate_main(argv) == 2
    assert one_line(capsys) == (f"error: {out}: holds files that are not a dataset written by generate "
                                "(metadata.json, train.h5); choose another --out or pass --overwrite")
    assert (out / "train.h5").read_bytes() == b"not ours"
    assert generate_main([*argv, "--overwrite"]) == 0
    assert generate_main(argv) == 0  # now a dataset generate wrote: rewritten


@pytest.mark.parametrize("holder", ["dead", "old empty"])
def test_the_assembly_lock_of_a_killed_worker_is_taken_over(tmp_path, holder):
    import socket

    from simulators.generate import generate

    out = tmp_path / "data"
    splits, options = {"train": 2, "valid": 0, "test": 0}, {"frames": 8, "device": "cpu"}
    generate("water", out, splits=splits, shard=(0, 2), **options)
    lock = out / ".shards/assemble.lock"  # as kill -9 while merging leaves it
    lock.write_text(f"{socket.gethostname()} 99999999\n" if holder == "dead" else "")
    if holder == "old empty":  # the lock of a version that wrote no pid
        os.utime(lock, (0, 0))
    generate("water", out, splits=splits, shard=(1, 2), **options)
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "train.h5"]


def test_a_live_workers_assembly_lock_is_respected(tmp_path):
    import socket

    from gnsim.atomic import take_lock

    lock = tmp_path / "assemble.lock"
    lock.write_text(f"{socket.gethostname()} {os.getppid()}\n")  # a live process
    assert not take_lock(lock)
    lock.write_text("another-host 99999999\n")  # on another host: it may be alive
    assert not take_lock(lock)
    lock.unlink()
    assert take_lock(lock) and lock.read_text() == f"{socket.gethostname()} {os.getpid()}\n"


def test_an_update_that_breaks_the_weights_is_never_saved_as_the_last_good_checkpoint(tmp_path, capsys,
                                                                                      falling_blocks, monkeypatch):
    # Step 1's loss is finite; its update leaves an infinite weight, as an overflowing gradient
    # does (issue 33 item 8: last.pt of step 1 held such weights under "the last good checkpoint").
    adam_step = torch.optim.Adam.step

    def overflowing_step(self, *args, **kwargs):
        result = adam_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", overflowing_step)
    message = run_main(["--config", "quick", "--data", falling_blocks, "--out", str(tmp_path / "run"), *TINY,
                        "checkpoint_every=1", "steps=3"], capsys)
    assert message.startswith("error: training diverged at step 1 (weights not finite)")
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_second_training_into_a_run_folder_in_use_is_refused(tmp_path, capsys, falling_blocks):
    lock = tmp_path / ".run.lock"  # a live run holds it: this very process (issue 33 item 14)
    lock.write_text(f"{os.uname().nodename} {os.getpid()}\n")
    message = run_main(["--config", "quick", "--data", falling_blocks, "--out", str(tmp_path / "run"), *TINY,
                        "steps=2"], capsys)
    assert message == f"error: {tmp_path / 'run'}: another training run is using it ({lock} names its host and pid)"
    assert not (tmp_path / "run").exists()
    lock.write_text(f"{os.uname().nodename} 999999999\n")  # its process is gone: taken over
    train_main(["--config", "quick", "--data", falling_blocks, "--out", str(tmp_path / "run"), *TINY, "steps=2"])
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file() and not lock.exists()


@pytest.mark.parametrize("override, error", [
    ("steps=.inf", "config key 'steps' in the command line must be an integer, got inf"),
    ("seed=-1", "config key 'seed' in the command line must be at least 0, got -1"),
    ("device=foo", "device 'foo' is not a device (auto, cpu, cuda, cuda:N)"),
    ("num_particle_types=2", "particle type id 5 needs num_particle_types above it, got 2"),
])
def test_a_careless_value_is_one_line_not_a_traceback(tmp_path, capsys, falling_blocks, override, error):
    message = run_main(["--config", "quick", "--data", falling_blocks, "--out", str(tmp_path / "run"), *TINY,
                        override], capsys)
    assert message.endswith(error)
    assert not (tmp_path / "run").exists()


def test_a_bad_window_read_by_a_loader_worker_is_one_line(tmp_path, capsys):
    import h5py

    data = write_dataset(tmp_path / "data", train=2, valid=1)
    metadata = json.loads((tmp_path / "data" / "metadata.json").read_text())
    metadata.pop("split_digests")  # a file edited after it was written, as a downloaded one may be
    (tmp_path / "data" / "metadata.json").write_text(json.dumps(metadata))
    with h5py.File(tmp_path / "data" / "train.h5", "a") as file:
        position = file["00001/position"][...]
        position[12, 3] = np.nan  # mid-trajectory: only the windows over frame 12 see it
        file["00001/position"][...] = position
    message = run_main(["--config", "quick", "--data", data, "--out", str(tmp_path / "run"), *TINY,
                        "num_workers=1", "steps=40"], capsys)
    assert message.startswith(f"error: {data}/train.h5 trajectory 00001: 'position' has NaN or inf values")


@pytest.mark.parametrize("change, shown", [
    ({"velocity": [1e300, 0.0]}, "inf substeps per frame"),
    ({"cfl": 1e-12}, "6.14e+12 substeps per frame"),
    ({"substeps": 10**12}, "1e+12 substeps per frame"),
])
def test_a_scene_that_would_never_finish_is_refused_with_its_substeps(tmp_path, capsys, change, shown):
    from simulators.generate import main as generate_main

    block = {"material": "water", "box": [[0.2, 0.2], [0.4, 0.4]], **{k: v for k, v in change.items() if k == "velocity"}}
    scene = {"dim": 2, "domain": [[0, 0], [1, 1]], "particle_spacing": 0.02, "frames": 10, "frame_dt": 0.005,
             "blocks": [block], **{k: v for k, v in change.items() if k != "velocity"}}
    (tmp_path / "scene.json").write_text(json.dumps(scene))
    assert generate_main(["--scene", str(tmp_path / "scene.json"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    message = one_line(capsys)
    assert shown in message and message.endswith("lower the velocities or substeps, or raise cfl or grid_spacing")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_one_line_for_train_and_ship(tmp_path, capsys, falling_blocks, trained_run):
    from training.ship import main as ship_main

    (tmp_path / "afile").write_text("mine")
    message = run_main(["--config", "quick", "--data", falling_blocks, "--out", str(tmp_path / "afile"), *TINY], capsys)
    assert message == f"error: {tmp_path / 'afile'}: exists and is not a folder; choose another --out"
    with pytest.raises(SystemExit):
        ship_main([str(trained_run), str(tmp_path / "afile")])
    assert one_line(capsys) == f"error: {tmp_path / 'afile'}: exists and is not a folder; choose another"
    assert (tmp_path / "afile").read_text() == "mine"


def test_sigterm_to_training_saves_the_state_like_ctrl_c(tmp_path, falling_blocks):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "training.train", "--config", "quick", "--data", falling_blocks,
                            "--out", str(out), *TINY, "steps=100000", "checkpoint_every=100000"],
                           cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text():  # steps under way
        assert time.monotonic() < deadline and run.poll() is None, "training did not start"
        time.sleep(0.1)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 130
    step = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert step > 0 and f"interrupted at step {step}" in run.stderr.read()


def test_an_out_it_may_not_write_is_one_line_for_train_and_ship(capsys, falling_blocks, trained_run):
    from training.ship import main as ship_main

    unwritable = Path("/sys/gnsim-test-run")  # sysfs refuses new entries even to root
    if not Path("/sys").is_dir():
        pytest.skip("no /sys to be refused by")
    message = run_main(["--config", "quick", "--data", falling_blocks, "--out", str(unwritable), *TINY], capsys)
    assert message.startswith("error: [Errno") and "/sys/" in message
    with pytest.raises(SystemExit):
        ship_main([str(trained_run), str(unwritable)])
    assert one_line(capsys).startswith("error: [Errno")


def test_a_checkpoint_the_disk_cannot_hold_is_one_line_and_leaves_no_partial_file(tmp_path, falling_blocks):
    import subprocess
    import sys

    # A file-size limit fails the checkpoint's writes as a full disk does (EFBIG for ENOSPC).
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (30000, 30000)); "
              "from training.train import main; main(sys.argv[1:])")
    out = tmp_path / "run"
    result = subprocess.run(check=False, args=[sys.executable, "-c", script, "--config", "quick", "--data", falling_blocks,
                             "--out", str(out), *TINY, "steps=2", "checkpoint_every=1"],
                            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {out}/checkpoints/last.pt: could not be written")
    assert list((out / "checkpoints").iterdir()) == []


def test_periodic_flags_of_the_wrong_length_are_one_line(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", train=1, valid=1)
    metadata = json.loads((tmp_path / "data" / "metadata.json").read_text())
    (tmp_path / "data" / "metadata.json").write_text(json.dumps({**metadata, "periodic_boundary_conditions": [True]}))
    message = run_main(["--config", "quick", "--data", data, "--out", str(tmp_path / "run"), *TINY], capsys)
    assert message.endswith("(metadata 'periodic_boundary_conditions' must have 2 entries, got [True])")
    assert not (tmp_path / "run").exists()
