"""The one dataset format: round trips, statistics, windows and every bad input's message."""

import json

import h5py
import numpy as np
import pytest
import torch

from gnsim import (
    DatasetError,
    DatasetWriter,
    TrajectoryDataset,
    TrajectoryFile,
    WindowDataset,
    read_metadata,
    validate,
)

RNG = np.random.default_rng(0)


def random_trajectory(frames=12, particles=9, dim=2, boundary=2):
    position = np.cumsum(RNG.normal(0, 0.01, (frames, particles, dim)), axis=0).astype(np.float32)
    particle_type = np.array([5] * (particles - boundary) + [3] * boundary)
    return position, particle_type


def write_dataset(folder, trajectories, dim=2, **extras):
    with DatasetWriter(
        folder,
        dim=dim,
        dt=0.0025,
        bounds=[[0, 1]] * dim,
        connectivity_radius=0.015,
        metadata={"simulator": "test"},
    ) as writer:
        for split, (position, particle_type) in trajectories:
            writer.add(split, position, particle_type, **extras)
    return folder


@pytest.fixture
def dataset(tmp_path):
    trajectories = [
        ("train", random_trajectory(12)),
        ("train", random_trajectory(20, particles=7)),
        ("valid", random_trajectory(8)),
        ("test", random_trajectory(9)),
    ]
    write_dataset(tmp_path / "data", trajectories)
    return tmp_path / "data", trajectories


def test_write_read_round_trip_is_bit_exact(dataset):
    folder, trajectories = dataset
    for split in ("train", "valid", "test"):
        expected = [t for s, t in trajectories if s == split]
        file = TrajectoryFile(folder / f"{split}.h5")
        assert len(file) == len(expected)
        for k, (position, particle_type) in enumerate(expected):
            assert file[k].position.tobytes() == position.tobytes()
            assert file[k].position.dtype == np.float32
            np.testing.assert_array_equal(file[k].particle_type, particle_type)
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json",
        "test.h5",
        "train.h5",
        "valid.h5",
    ]


def test_metadata_statistics_equal_numpy_on_the_training_split(dataset):
    folder, trajectories = dataset
    metadata = read_metadata(folder)
    velocities, accelerations = [], []
    for split, (position, particle_type) in trajectories:
        if split == "train":
            x = position[:, particle_type != 3].astype(np.float64)
            velocities.append((x[1:] - x[:-1]).reshape(-1, 2))
            accelerations.append((x[2:] - 2 * x[1:-1] + x[:-2]).reshape(-1, 2))
    velocity, acceleration = np.concatenate(velocities), np.concatenate(accelerations)
    np.testing.assert_allclose(metadata["vel_mean"], velocity.mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(metadata["vel_std"], velocity.std(0), rtol=1e-12)
    np.testing.assert_allclose(metadata["acc_mean"], acceleration.mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(metadata["acc_std"], acceleration.std(0), rtol=1e-12)
    assert metadata["sequence_length"] == 19  # steps of the longest training trajectory (20 frames)
    assert metadata["dim"] == 2 and metadata["dt"] == 0.0025 and metadata["simulator"] == "test"
    assert (
        metadata["default_connectivity_radius"] == 0.015 and metadata["num_trajectories_train"] == 2
    )


def test_windowed_sample_is_the_raw_frames_by_index_arithmetic(dataset):
    folder, trajectories = dataset
    windows = WindowDataset(folder, "train")
    first, second = trajectories[0][1][0], trajectories[1][1][0]
    assert len(windows) == (12 - 6) + (20 - 6)
    for index in (0, 5, 6, 13, 19):
        k, start = (0, index) if index < 6 else (1, index - 6)
        raw = (first, second)[k]
        sample = windows[index]
        assert sample["position"].shape == (7, raw.shape[1], 2)
        assert torch.equal(sample["position"], torch.from_numpy(raw[start : start + 7]))
        assert sample["particle_type"].dtype == torch.int64
    with pytest.raises(IndexError):
        windows[20]


def test_whole_trajectories_and_extras_are_served(tmp_path):
    position, particle_type = random_trajectory(10)
    write_dataset(tmp_path, [("train", (position, particle_type))], material=np.float32(30.0))
    item = TrajectoryDataset(tmp_path, "train")[0]
    assert torch.equal(item["position"], torch.from_numpy(position))
    assert float(item["material"]) == 30.0


def test_reader_works_in_dataloader_workers(dataset):
    folder, _ = dataset
    windows = WindowDataset(folder, "train")
    loader = torch.utils.data.DataLoader(windows, batch_size=None, num_workers=2)
    assert [sample["position"].shape[0] for sample in loader] == [7] * len(windows)


def test_failed_writer_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError), DatasetWriter(
        tmp_path, dim=2, dt=0.1, bounds=[[0, 1]] * 2, connectivity_radius=0.1
    ) as writer:
        writer.add("train", *random_trajectory())
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


# --- bad input: each gets one line naming the file, the trajectory and the field --------------


def write_raw(folder, position, particle_type, dim=2, metadata_dim=None):
    """A dataset written with h5py directly, so that it can be wrong in any way."""
    folder.mkdir(exist_ok=True)
    with h5py.File(folder / "train.h5", "w") as file:
        group = file.create_group("00000")
        if position is not None:
            group.create_dataset("position", data=position)
        if particle_type is not None:
            group.create_dataset("particle_type", data=particle_type)
    metadata = {
        "bounds": [[0, 1]] * dim,
        "sequence_length": 10,
        "default_connectivity_radius": 0.1,
        "dim": metadata_dim or dim,
        "dt": 0.01,
        "vel_mean": [0] * dim,
        "vel_std": [1] * dim,
        "acc_mean": [0] * dim,
        "acc_std": [1] * dim,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


GOOD_POSITION = np.zeros((10, 4, 2), np.float32)
GOOD_TYPES = np.array([5, 5, 6, 3])


@pytest.mark.parametrize(
    "position, particle_type, message",
    [
        (None, GOOD_TYPES, r"train.h5 trajectory 00000: missing field 'position'"),
        (GOOD_POSITION, None, r"train.h5 trajectory 00000: missing field 'particle_type'"),
        (
            GOOD_POSITION.astype(np.float64),
            GOOD_TYPES,
            r"trajectory 00000: 'position' must be float32, got float64",
        ),
        (
            GOOD_POSITION.astype(np.int32),
            GOOD_TYPES,
            r"trajectory 00000: 'position' must be float32, got int32",
        ),
        (GOOD_POSITION[0], GOOD_TYPES, r"trajectory 00000: 'position' must have rank 3"),
        (
            GOOD_POSITION,
            GOOD_TYPES.astype(np.float32),
            r"trajectory 00000: 'particle_type' must be integer",
        ),
        (GOOD_POSITION, GOOD_TYPES[None], r"trajectory 00000: 'particle_type' must have rank 1"),
        (GOOD_POSITION, GOOD_TYPES[:3], r"'position' has 4 particles but 'particle_type' has 3"),
        (
            np.zeros((10, 4, 3), np.float32),
            GOOD_TYPES,
            r"'position' is 3D but the metadata says dim=2",
        ),
        (
            np.where(np.arange(10)[:, None, None] == 4, np.nan, GOOD_POSITION).astype(np.float32),
            GOOD_TYPES,
            r"'position' has NaN or inf values \(first at frame 4\)",
        ),
        (
            np.where(np.arange(10)[:, None, None] == 2, np.inf, GOOD_POSITION).astype(np.float32),
            GOOD_TYPES,
            r"'position' has NaN or inf values \(first at frame 2\)",
        ),
        (GOOD_POSITION[:6], GOOD_TYPES, r"'position' has 6 frames, fewer than the 7 needed"),
        (GOOD_POSITION, np.array([5, 5, 4, 3]), r"'particle_type' has unknown id 4"),
    ],
)
def test_bad_trajectory_gets_a_one_line_message(tmp_path, position, particle_type, message):
    folder = write_raw(tmp_path / "bad", position, particle_type)
    with pytest.raises(DatasetError, match=message) as error:
        validate(folder)
    assert "\n" not in str(error.value)
    assert str(folder / "train.h5") in str(error.value) or "train.h5" in str(error.value)


def test_dimension_disagreeing_with_metadata_is_named(tmp_path):
    folder = write_raw(tmp_path / "bad", GOOD_POSITION, GOOD_TYPES, dim=3)
    with pytest.raises(DatasetError, match=r"'position' is 2D but the metadata says dim=3"):
        validate(folder)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"metadata.json: file not found"):
        validate(tmp_path)
    write_raw(tmp_path, GOOD_POSITION, GOOD_TYPES)
    with pytest.raises(DatasetError, match=r"test.h5: file not found"):
        TrajectoryDataset(tmp_path, "test")


def test_missing_group_is_named(tmp_path):
    folder = write_raw(tmp_path, GOOD_POSITION, GOOD_TYPES)
    with h5py.File(folder / "train.h5", "a") as file:
        del file["00000"]
    with pytest.raises(DatasetError, match=r"train.h5: holds no trajectory"):
        validate(folder)


def test_metadata_missing_a_key_is_named(tmp_path):
    folder = write_raw(tmp_path, GOOD_POSITION, GOOD_TYPES)
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["acc_std"]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match=r"metadata.json: missing key 'acc_std'"):
        read_metadata(folder)


def test_truncated_hdf5_file_is_named(tmp_path):
    folder = write_raw(tmp_path, np.zeros((200, 50, 2), np.float32), np.full(50, 5))
    data = (folder / "train.h5").read_bytes()
    (folder / "train.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DatasetError,
        match=r"train.h5: not a readable HDF5 file|train.h5 trajectory 00000: field 'position' is unreadable",
    ):
        validate(folder)


def test_corrupt_hdf5_file_is_named(tmp_path):
    folder = write_raw(tmp_path, GOOD_POSITION, GOOD_TYPES)
    (folder / "train.h5").write_bytes(b"this is not an HDF5 file" * 100)
    with pytest.raises(DatasetError, match=r"train.h5: not a readable HDF5 file"):
        validate(folder)


def test_folder_without_training_split_keeps_the_given_statistics(tmp_path):
    statistics = {
        "vel_mean": [0.0, 0.0],
        "vel_std": [1.0, 2.0],
        "acc_mean": [0.0, 0.0],
        "acc_std": [3.0, 4.0],
    }
    position, particle_type = random_trajectory(10)
    with DatasetWriter(
        tmp_path / "rollouts",
        dim=2,
        dt=0.1,
        bounds=[[0, 1]] * 2,
        connectivity_radius=0.1,
        metadata=statistics,
    ) as writer:
        writer.add("test", position, particle_type, ground_truth=position)
    assert read_metadata(tmp_path / "rollouts")["acc_std"] == [3.0, 4.0]
    assert TrajectoryFile(tmp_path / "rollouts" / "test.h5")[0].extras["ground_truth"].shape == (
        10,
        9,
        2,
    )
    with pytest.raises(
        DatasetError, match=r"no training split was written, so metadata needs 'vel_mean'"
    ), DatasetWriter(
        tmp_path / "bare", dim=2, dt=0.1, bounds=[[0, 1]] * 2, connectivity_radius=0.1
    ) as writer:
        writer.add("test", position, particle_type)
    assert list((tmp_path / "bare").iterdir()) == []


def test_the_metadata_records_the_neighbour_density_at_the_default_radius(tmp_path):
    from gnsim import DatasetWriter, read_metadata

    spacing = 0.01
    lattice = np.stack(np.meshgrid(np.arange(10), np.arange(10)), -1).reshape(-1, 2) * spacing + 0.2
    frames = np.repeat(lattice[None], 21, axis=0)
    types = np.full(len(lattice), 5)
    types[0] = 3  # a boundary particle: a neighbour of others, not counted as a receiver
    with DatasetWriter(tmp_path, dim=2, dt=0.01, bounds=[[0, 1], [0, 1]],
                       connectivity_radius=1.5 * spacing) as writer:
        writer.add("train", frames, types)
    distance = np.linalg.norm(lattice[:, None] - lattice[None], axis=-1)
    expected = ((distance <= 1.5 * spacing).sum(axis=1) - 1)[types == 5].mean()  # 8 inside, fewer at edges
    assert read_metadata(tmp_path)["mean_neighbours"] == pytest.approx(expected)
