"""viz.export: rollouts and dataset trajectories as ParaView .vtp series, read back with pyvista."""

import numpy as np
import pytest
import pyvista as pv

from gnsim import DatasetWriter, TrajectoryFile
from tests.conftest import falling_block, write_dataset
from viz.export import main


def read_series(index):
    reader = pv.get_reader(str(index))
    frames = []
    for t in range(len(reader.time_values)):
        reader.set_active_time_point(t)
        frames.append(reader.read()[0])
    return reader.time_values, frames


def test_a_rollout_exports_every_frame_with_type_velocity_and_error(tmp_path, capsys):
    position, particle_type = falling_block(3, frames=12)
    truth = position.copy()
    position = position + 0.01  # every predicted particle 1 cm right and up of the truth
    with DatasetWriter(tmp_path / "rollouts", dim=2, dt=0.02, bounds=[[0, 1], [0, 1]],
                       connectivity_radius=0.05,
                       metadata={"vel_mean": [0, 0], "vel_std": [1, 1], "acc_mean": [0, 0], "acc_std": [1, 1]}) as writer:
        writer.add("test", position, particle_type, ground_truth=truth)
    main([str(tmp_path / "rollouts" / "test.h5"), "--vtk", str(tmp_path / "vtk")])
    assert "trajectory_00000.pvd" in capsys.readouterr().out
    times, frames = read_series(tmp_path / "vtk" / "trajectory_00000.pvd")
    np.testing.assert_allclose(times, 0.02 * np.arange(12), atol=1e-9)
    assert len(frames) == 12 and all(frame.n_points == len(particle_type) for frame in frames)
    last = frames[-1]
    np.testing.assert_allclose(last.points[:, :2], position[-1], atol=1e-6)
    np.testing.assert_array_equal(last.point_data["particle_type"], particle_type)
    np.testing.assert_allclose(last.point_data["error"], 0.01 * np.sqrt(2), rtol=1e-4)
    np.testing.assert_allclose(last.point_data["velocity"][:, :2], (position[-1] - position[-2]) / 0.02, rtol=1e-4, atol=1e-6)


def test_a_dataset_trajectory_exports_without_error_and_bad_input_is_one_line(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", train=2, valid=0, frames=8)
    main([f"{data}/train.h5", "--vtk", str(tmp_path / "vtk"), "--trajectory", "1"])
    _, frames = read_series(tmp_path / "vtk" / "trajectory_00001.pvd")
    truth = TrajectoryFile(f"{data}/train.h5")[1].position
    assert len(frames) == 8 and "error" not in frames[0].point_data
    np.testing.assert_allclose(frames[3].points[:, :2], truth[3], atol=1e-6)
    for arguments, message in [([f"{data}/nothing.h5", "--vtk", str(tmp_path / "new")], "nothing.h5: file not found"),
                               ([f"{data}/train.h5", "--vtk", str(tmp_path / "vtk")], "exists and is not an empty folder"),
                               ([f"{data}/train.h5", "--vtk", str(tmp_path / "new"), "--trajectory", "5"], "no trajectory 5")]:
        with pytest.raises(SystemExit):
            main(arguments)
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1
    assert not (tmp_path / "new").exists()
