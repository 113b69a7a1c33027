"""Conversion from and to DeepMind TFRecord, geoelements/gns npz and LagrangeBench HDF5.

Every foreign fixture here is written by an independent writer, never by gnsim.convert: TFRecords
by protobuf itself (the tf.train.SequenceExample schema declared below from TensorFlow's
example.proto / feature.proto) framed with a CRC-32C computed by the reference algorithm in this
file; npz files by numpy in the layouts gns's `load_npz_data` reads; LagrangeBench files by h5py
or the real dataset in shared/data.
"""

import json
import shutil
import struct

import h5py
import numpy as np
import pytest

from benchmarks.deepmind_tfrecord import (
    SequenceExample,
    deepmind_record,
    reference_crc32c,
    write_tfrecord,
)
from gnsim import DatasetError, TrajectoryFile, read_metadata, validate
from gnsim.convert import convert, detect_format, ensure_dataset
from gnsim.convert.__main__ import main
from tests.conftest import SHARED_DATA, needs_shared

LAGRANGEBENCH = str(SHARED_DATA / "lagrangebench-3D_LJ_3")
needs_lagrangebench = needs_shared("lagrangebench-3D_LJ_3")
RNG = np.random.default_rng(0)


def test_reference_crc32c_matches_the_published_check_value():
    assert reference_crc32c(b"123456789") == 0xE3069283  # RFC 3720 / the CRC catalogue




def random_walk(frames, particles, dim):
    return (0.5 + np.cumsum(RNG.normal(0, 0.002, (frames, particles, dim)), axis=0)).astype(
        np.float32
    )


def deepmind_dataset(folder, dim=2, sequence_length=10, step_context=False, keys=None):
    """A WaterDrop-like dataset: 2 train, 1 valid, 1 test trajectories of water and boundary."""
    folder.mkdir()
    metadata = {
        "bounds": [[0.1, 0.9]] * dim,
        "sequence_length": sequence_length,
        "default_connectivity_radius": 0.015,
        "dim": dim,
        "dt": 0.0025,
        "vel_mean": [0.0] * dim,
        "vel_std": [0.001] * dim,
        "acc_mean": [0.0] * dim,
        "acc_std": [0.0001] * dim,
    }
    if step_context:
        metadata.update(context_mean=[0.5, -1.0], context_std=[0.1, 0.2])
    (folder / "metadata.json").write_text(json.dumps(metadata))
    trajectories = {}
    for split, count in (("train", 2), ("valid", 1), ("test", 1)):
        trajectories[split] = []
        for k in range(count):
            particles = 6 + k
            position = random_walk(sequence_length + 1, particles, dim)
            particle_type = np.array([5] * (particles - 2) + [3, 3], dtype=np.int64)
            context = (
                RNG.normal(size=(sequence_length + 1, 2)).astype(np.float32)
                if step_context
                else None
            )
            trajectories[split].append((keys[k] if keys else k, position, particle_type, context))
        write_tfrecord(
            folder / f"{split}.tfrecord", [deepmind_record(*t) for t in trajectories[split]]
        )
    return trajectories


# ---------------------------------------------------------------------------------------------
# DeepMind TFRecord


def test_deepmind_tfrecord_converts_with_every_array_and_metadata_key_kept(tmp_path):
    trajectories = deepmind_dataset(tmp_path / "WaterDrop")
    assert detect_format(tmp_path / "WaterDrop") == "tfrecord"
    convert(tmp_path / "WaterDrop", tmp_path / "ours")
    metadata = validate(tmp_path / "ours")
    assert (
        metadata["sequence_length"] == 10
        and metadata["dt"] == 0.0025
        and metadata["bounds"] == [[0.1, 0.9]] * 2
    )
    assert metadata["source"]["metadata"] == json.loads(
        (tmp_path / "WaterDrop/metadata.json").read_text()
    )
    for split, expected in trajectories.items():
        file = TrajectoryFile(tmp_path / "ours" / f"{split}.h5")
        assert len(file) == len(expected)
        for k, (_, position, particle_type, _) in enumerate(expected):
            assert np.array_equal(file[k].position, position) and np.array_equal(
                file[k].particle_type, particle_type
            )
    # Statistics are recomputed from the training split, in DeepMind's per-frame convention.
    velocity = np.concatenate(
        [
            np.diff(p.astype(np.float64), axis=0)[:, t != 3].reshape(-1, 2)
            for _, p, t, _ in trajectories["train"]
        ]
    )
    assert np.allclose(metadata["vel_std"], velocity.std(axis=0), rtol=1e-12)


def test_deepmind_round_trip_is_bit_exact(tmp_path):
    deepmind_dataset(tmp_path / "WaterDrop")
    convert(tmp_path / "WaterDrop", tmp_path / "ours")
    convert(tmp_path / "ours", tmp_path / "back", to="tfrecord")
    for split in ("train", "valid", "test"):
        assert (tmp_path / f"back/{split}.tfrecord").read_bytes() == (
            tmp_path / f"WaterDrop/{split}.tfrecord"
        ).read_bytes()
    assert json.loads((tmp_path / "back/metadata.json").read_text()) == json.loads(
        (tmp_path / "WaterDrop/metadata.json").read_text()
    )


def test_deepmind_step_context_and_unusual_keys_survive_the_round_trip(tmp_path):
    trajectories = deepmind_dataset(tmp_path / "src", dim=3, step_context=True, keys=[7, -3])
    convert(tmp_path / "src", tmp_path / "ours")
    file = TrajectoryFile(tmp_path / "ours/train.h5")
    assert np.array_equal(file[1].extras["step_context"], trajectories["train"][1][3])
    assert read_metadata(tmp_path / "ours")["context_mean"] == [0.5, -1.0]
    convert(tmp_path / "ours", tmp_path / "back", to="tfrecord")
    for split in ("train", "valid", "test"):
        assert (tmp_path / f"back/{split}.tfrecord").read_bytes() == (
            tmp_path / f"src/{split}.tfrecord"
        ).read_bytes()


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def assert_nothing_written(tmp_path, names=("src",)):
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_flipped_data_byte_gives_one_line_error_naming_file_and_record(tmp_path, capsys):
    deepmind_dataset(tmp_path / "src")
    path = tmp_path / "src/train.tfrecord"
    data = bytearray(path.read_bytes())
    first_record = 12 + struct.unpack("<Q", data[:8])[0] + 4
    data[first_record + 12 + 100] ^= 0x01  # a byte inside record 1's payload
    path.write_bytes(bytes(data))
    code, error = run_cli(capsys, tmp_path / "src", tmp_path / "dst")
    assert code == 2
    assert error == f"error: {path} record 1: bad CRC of the record data (corrupted file)"
    assert_nothing_written(tmp_path)


def test_flipped_length_byte_and_truncation_are_named_too(tmp_path, capsys):
    deepmind_dataset(tmp_path / "src")
    path = tmp_path / "src/valid.tfrecord"
    original = path.read_bytes()
    path.write_bytes(bytes([original[0] ^ 0x80]) + original[1:])
    assert run_cli(capsys, tmp_path / "src", tmp_path / "dst") == (
        2,
        f"error: {path} record 0: bad CRC of the record length (corrupted file)",
    )
    path.write_bytes(original[:-10])
    code, error = run_cli(capsys, tmp_path / "src", tmp_path / "dst")
    assert (
        code == 2
        and error.startswith(f"error: {path} record 0: truncated record")
        and "\n" not in error
    )
    assert_nothing_written(tmp_path)


def test_shape_disagreeing_with_metadata_is_named(tmp_path, capsys):
    deepmind_dataset(tmp_path / "src")
    metadata = json.loads((tmp_path / "src/metadata.json").read_text())
    (tmp_path / "src/metadata.json").write_text(json.dumps({**metadata, "sequence_length": 9}))
    assert run_cli(capsys, tmp_path / "src", tmp_path / "dst") == (
        2,
        (
            f"error: {tmp_path / 'src/train.tfrecord'} record 0: 'position' has 11 frames "
            "but metadata sequence_length 9 means 10"
        ),
    )
    (tmp_path / "src/metadata.json").write_text(json.dumps({**metadata, "dim": 3}))
    code, error = run_cli(capsys, tmp_path / "src", tmp_path / "dst")
    assert (code, error) == (
        2,
        (
            f"error: {tmp_path / 'src/train.tfrecord'} record 0: 'position' has 4 particles "
            "but 'particle_type' has 6"
        ),
    )  # 6 x 2 floats read as 4 x 3
    assert_nothing_written(tmp_path)


def test_unknown_format_and_missing_split_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/notes.txt").write_text("not a dataset")
    code, error = run_cli(capsys, tmp_path / "src", tmp_path / "dst")
    assert code == 2 and error.startswith(f"error: {tmp_path / 'src'}: unknown format")
    shutil.rmtree(tmp_path / "src")
    deepmind_dataset(tmp_path / "src")
    (tmp_path / "src/train.tfrecord").unlink()
    assert run_cli(capsys, tmp_path / "src", tmp_path / "dst") == (
        2,
        (f"error: {tmp_path / 'src/train.tfrecord'}: missing split 'train' "
         "(found: valid.tfrecord, test.tfrecord)"),
    )
    assert_nothing_written(tmp_path)


def test_existing_destination_is_refused_and_kept(tmp_path, capsys):
    deepmind_dataset(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst/keep.txt").write_text("mine")
    assert run_cli(capsys, tmp_path / "src", tmp_path / "dst") == (
        2,
        f"error: {tmp_path / 'dst'}: already exists and is not empty",
    )
    assert (tmp_path / "dst/keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# geoelements/gns npz


def gns_dataset(folder, layout):
    """Sand with a barrier (6 and 3), as gns's docs describe; "keys" layout with a material."""
    folder.mkdir()
    metadata = {
        "train": {
            "bounds": [[0.1, 0.9], [0.1, 0.9]],
            "sequence_length": 11,
            "default_connectivity_radius": 0.03,
            "dim": 2,
            "dt": 0.0025,
            "vel_mean": [0, 0],
            "vel_std": [1, 1],
            "acc_mean": [0, 0],
            "acc_std": [1, 1],
            "nnode_in": 31,
            "nedge_in": 3,
        },
        "rollout": {"bounds": [[0.1, 1.9], [0.1, 0.9]], "sequence_length": 20},
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    for split, count in (("train", 3), ("test", 1)):
        items = []
        for k in range(count):
            position = random_walk(12, 5 + k, 2)
            particle_type = np.array([6] * (3 + k) + [3, 3])
            if layout == "gns_data":
                items.append((position, particle_type))
            else:
                material = np.full(
                    5 + k, np.tan(np.deg2rad(30 + k))
                )  # tan(friction angle) per particle
                items.append((position, particle_type, material))
        if layout == "gns_data":
            structured = np.empty(len(items), dtype=object)
            for k, item in enumerate(items):
                structured[k] = item
            np.savez(folder / f"{split}.npz", gns_data=structured)
        else:
            arrays = {}
            for k, item in enumerate(items):
                arrays[f"simulation_trajectory_{k}"] = np.empty(len(item), dtype=object)
                arrays[f"simulation_trajectory_{k}"][:] = list(
                    item
                )  # numpy 2 refuses ragged tuples
            np.savez_compressed(folder / f"{split}.npz", **arrays)


def load_gns(path):
    """As gns/data_loader.py load_npz_data reads it, plus the keys."""
    with np.load(path, allow_pickle=True) as data:
        if "gns_data" in data:
            return ["gns_data"], list(data["gns_data"])
        return list(data.keys()), [item for _, item in data.items()]


@pytest.mark.parametrize("layout", ["gns_data", "keys"])
def test_gns_npz_round_trip_is_bit_exact(tmp_path, layout):
    gns_dataset(tmp_path / "gns", layout)
    assert detect_format(tmp_path / "gns") == "npz"
    convert(tmp_path / "gns", tmp_path / "ours")
    metadata = validate(tmp_path / "ours")
    assert metadata["bounds"] == [[0.1, 0.9], [0.1, 0.9]] and metadata["nnode_in"] == 31
    train = TrajectoryFile(tmp_path / "ours/train.h5")
    assert len(train) == 3 and sorted(train[2].extras) == (
        [] if layout == "gns_data" else ["material_property"]
    )
    convert(tmp_path / "ours", tmp_path / "back", to="npz")
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == [
        "metadata.json",
        "test.npz",
        "train.npz",
    ]
    assert json.loads((tmp_path / "back/metadata.json").read_text()) == json.loads(
        (tmp_path / "gns/metadata.json").read_text()
    )
    for split in ("train", "test"):
        keys, original = load_gns(tmp_path / f"gns/{split}.npz")
        keys_back, back = load_gns(tmp_path / f"back/{split}.npz")
        assert keys_back == keys and len(back) == len(original)
        for item, item_back in zip(original, back, strict=True):
            assert len(item_back) == len(item)
            for array, array_back in zip(item, item_back, strict=True):
                assert array_back.dtype == array.dtype and np.array_equal(array_back, array)


def test_gns_npz_with_a_scalar_particle_type_and_float64_positions(tmp_path):
    """gns's own tests store one int per trajectory; its hdf5 converter writes float64."""
    (tmp_path / "gns").mkdir()
    (tmp_path / "gns/metadata.json").write_text(
        json.dumps(
            {
                "bounds": [[0, 1]] * 3,
                "default_connectivity_radius": 0.1,
                "dim": 3,
                "dt": 0.01,
                "sequence_length": 9,
            }
        )
    )
    position = 0.5 + np.cumsum(RNG.normal(0, 0.01, (10, 4, 3)), axis=0)
    structured = np.empty(1, dtype=object)
    structured[0] = (position, 6)
    np.savez(tmp_path / "gns/train.npz", gns_data=structured)
    convert(tmp_path / "gns", tmp_path / "ours")
    trajectory = TrajectoryFile(tmp_path / "ours/train.h5")[0]
    assert trajectory.particle_type.tolist() == [6, 6, 6, 6]
    assert np.array_equal(trajectory.position, position.astype(np.float32))
    convert(tmp_path / "ours", tmp_path / "back", to="npz")
    (_, [(position_back, particle_type_back)]) = load_gns(tmp_path / "back/train.npz")
    assert position_back.dtype == np.float64 and np.array_equal(
        position_back, position.astype(np.float32)
    )
    assert np.ndim(particle_type_back) == 0 and particle_type_back == 6


def test_gns_npz_with_the_wrong_dimension_names_file_and_record(tmp_path, capsys):
    gns_dataset(tmp_path / "src", "keys")
    metadata = json.loads((tmp_path / "src/metadata.json").read_text())
    metadata["train"]["dim"] = 3
    (tmp_path / "src/metadata.json").write_text(json.dumps(metadata))
    assert run_cli(capsys, tmp_path / "src", tmp_path / "dst") == (
        2,
        (
            f"error: {tmp_path / 'src/train.npz'} record 0 ('simulation_trajectory_0'): "
            "positions have shape (12, 5, 2) (float32), the metadata says float [T, N, 3]"
        ),
    )
    assert_nothing_written(tmp_path)


# ---------------------------------------------------------------------------------------------
# LagrangeBench


@needs_lagrangebench
def test_real_lagrangebench_dataset_converts_with_periodic_box_and_water(tmp_path):
    convert(LAGRANGEBENCH, tmp_path / "lj")
    metadata = validate(tmp_path / "lj")
    assert metadata["periodic_boundary_conditions"] == [True, True, True]
    assert metadata["bounds"] == [[0.0, 5.0]] * 3 and metadata["default_connectivity_radius"] == 3.0
    assert (metadata["sequence_length"], metadata["sequence_length_test"]) == (
        1213,
        404,
    )  # steps = frames - 1
    assert metadata["num_particles_max"] == 3 and metadata["num_trajectories_valid"] == 1
    with h5py.File(f"{LAGRANGEBENCH}/train.h5") as file:
        original = file["00000/position"][()]
    trajectory = TrajectoryFile(tmp_path / "lj/train.h5")[0]
    assert np.array_equal(trajectory.position, original) and trajectory.particle_type.tolist() == [
        5,
        5,
        5,
    ]
    # Particles cross the periodic walls (raw steps of nearly a box length), yet the velocity
    # statistics are those of the minimum-image motion: a few 1e-3 per frame, not ~0.1.
    assert np.abs(np.diff(original, axis=0)).max() > 4.9
    assert np.allclose(metadata["vel_std"], [0.006637, 0.006098, 0.002329], atol=1e-6)


def lagrangebench_dataset(folder, particle_type):
    folder.mkdir()
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "dim": 2,
                "dt": 0.001,
                "bounds": [[0, 1], [0, 1]],
                "default_connectivity_radius": 0.05,
                "sequence_length_train": 8,
                "num_trajs_train": 1,
                "periodic_boundary_conditions": [False, False],
            }
        )
    )
    with h5py.File(folder / "train.h5", "w") as file:
        file["00000/position"] = random_walk(8, len(particle_type), 2)
        file["00000/particle_type"] = np.asarray(particle_type, dtype=np.int32)


def test_lagrangebench_particle_ids_map_to_gns_ids(tmp_path, capsys):
    lagrangebench_dataset(
        tmp_path / "src", [0, 0, 1, 2, 3]
    )  # fluid, fluid, wall, moving wall, rigid
    convert(tmp_path / "src", tmp_path / "ours")
    assert TrajectoryFile(tmp_path / "ours/train.h5")[0].particle_type.tolist() == [5, 5, 3, 3, 0]
    shutil.rmtree(tmp_path / "ours")
    shutil.rmtree(tmp_path / "src")
    lagrangebench_dataset(tmp_path / "src", [0, 4])
    assert run_cli(capsys, tmp_path / "src", tmp_path / "dst") == (
        2,
        (
            f"error: {tmp_path / 'src/train.h5'} record 00000: LagrangeBench particle type 4 "
            "is unknown (known: 0 fluid, 1 solid wall, 2 moving wall, 3 rigid body)"
        ),
    )
    assert_nothing_written(tmp_path)


# ---------------------------------------------------------------------------------------------
# Training on an original folder: the cache


def test_ensure_dataset_converts_once_beside_the_source_and_notices_changes(tmp_path, capsys):
    deepmind_dataset(tmp_path / "WaterDrop")
    assert ensure_dataset(tmp_path / "WaterDrop") == tmp_path / "WaterDrop.gnsim"
    assert capsys.readouterr().err.splitlines()[1].startswith("converted the DeepMind TFRecord dataset")
    validate(tmp_path / "WaterDrop.gnsim")
    assert (
        ensure_dataset(tmp_path / "WaterDrop.gnsim") == tmp_path / "WaterDrop.gnsim"
    )  # ours: as is
    assert ensure_dataset(tmp_path / "WaterDrop") == tmp_path / "WaterDrop.gnsim"
    assert capsys.readouterr().err.startswith(
        f"using {tmp_path / 'WaterDrop.gnsim'}, converted from"
    )
    deepmind_dataset(tmp_path / "other", sequence_length=12)  # the source changes: convert again
    for split in ("train", "valid", "test"):
        shutil.copy(tmp_path / f"other/{split}.tfrecord", tmp_path / f"WaterDrop/{split}.tfrecord")
    shutil.copy(tmp_path / "other/metadata.json", tmp_path / "WaterDrop/metadata.json")
    ensure_dataset(tmp_path / "WaterDrop")
    assert capsys.readouterr().err.startswith("converting")
    assert read_metadata(tmp_path / "WaterDrop.gnsim")["sequence_length"] == 12


@needs_lagrangebench
def test_ensure_dataset_of_a_read_only_folder_caches_under_xdg_cache_home(tmp_path, monkeypatch):
    # Our own read-only copy: shared/ may be writable (it is, to root), and must stay untouched.
    source = tmp_path / "readonly" / "lagrangebench-3D_LJ_3"
    shutil.copytree(LAGRANGEBENCH, source)
    source.parent.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        cache = ensure_dataset(source)
        assert sorted(p.name for p in source.parent.iterdir()) == [source.name]
    finally:
        source.parent.chmod(0o755)
    assert cache.parent == tmp_path / "cache" / "gnsim"
    assert cache.name.startswith("lagrangebench-3D_LJ_3-")
    assert read_metadata(cache)["periodic_boundary_conditions"] == [True, True, True]
    assert ensure_dataset(source) == cache


def test_cli_help_and_success_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--from" in capsys.readouterr().out
    deepmind_dataset(tmp_path / "src")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'dst'} (DeepMind TFRecord -> gnsim)\n"


@needs_lagrangebench
def test_export_errors_name_the_users_file_not_our_intermediate_copy(tmp_path):
    # LagrangeBench's splits differ in length (1214 and 405 frames); DeepMind's reader needs one.
    with pytest.raises(DatasetError) as error:
        convert(LAGRANGEBENCH, tmp_path / "tf", to="tfrecord")
    assert str(error.value) == (
        f"{LAGRANGEBENCH}/valid.h5 record 0: 405 frames, but DeepMind's reader needs "
        "sequence_length + 1 = 1214 in every trajectory"
    )
    assert list(tmp_path.iterdir()) == []
    convert(LAGRANGEBENCH, tmp_path / "npz", to="npz")  # gns's npz takes any length
    _, [(position, particle_type)] = load_gns(tmp_path / "npz/valid.npz")
    assert position.shape == (405, 3, 3) and particle_type.tolist() == [5, 5, 5]
    # The periodic box travels along, so that converting back gives the same statistics.
    convert(tmp_path / "npz", tmp_path / "again")
    assert read_metadata(tmp_path / "again")["vel_std"] == pytest.approx(
        [0.006637, 0.006098, 0.002329], abs=1e-6
    )


def test_records_are_read_whatever_the_field_order_protobuf_allows(tmp_path):
    """Concatenated serializations merge (protobuf semantics): here feature lists come first."""
    trajectories = deepmind_dataset(tmp_path / "src")
    _, position, particle_type, _ = trajectories["train"][0]
    lists_only, context_only = SequenceExample(), SequenceExample()
    lists_only.ParseFromString(deepmind_record(0, position, particle_type))
    lists_only.ClearField("context")
    context_only.context.feature["particle_type"].bytes_list.value.append(particle_type.tobytes())
    context_only.context.feature["key"].int64_list.value.append(0)
    merged = lists_only.SerializeToString() + context_only.SerializeToString()
    write_tfrecord(tmp_path / "src/train.tfrecord", [merged])
    convert(tmp_path / "src", tmp_path / "ours")
    trajectory = TrajectoryFile(tmp_path / "ours/train.h5")[0]
    assert np.array_equal(trajectory.position, position)
    assert trajectory.particle_type.tolist() == [5, 5, 5, 5, 3, 3]
