"""geoelements' taichi_mpm output (trajectoryK.npz beside inputs_2d_K.json) into our format.

The small fixtures are written by numpy in the layout taichi_mpm saves (gns's npz, one key per
file); the real folder is ../shared/data/geoelements-sand2d, beside the checkout.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gnsim import DatasetError, read_metadata
from gnsim.convert import convert, detect_format
from gnsim.convert.taichi_mpm import split_of
from gnsim.dataset import TrajectoryDataset
from tests.conftest import SHARED_DATA, needs_shared

GEO_SAND = SHARED_DATA / "geoelements-sand2d"


def taichi_folder(folder: Path, angles: list[float], frames: int = 8, **changes) -> Path:
    """One trajectory per friction angle, as taichi_mpm writes them."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k, angle in enumerate(angles):
        position = (0.3 + 0.2 * rng.random((1, 12, 2)) + np.cumsum(
            rng.normal(0, 1e-3, (frames, 12, 2)), axis=0)).astype(np.float32)
        item = np.empty(2, dtype=object)
        item[0], item[1] = position, np.full(12, 6)
        np.savez(folder / f"trajectory{k}.npz", **{f"trajectory{k}": item})
        inputs = {"friction_angle": angle, "sim_space": [[0.1, 0.9], [0.1, 0.9]], "mpm_dt": 0.0025,
                  "gravity": [0, -9.81], **(changes if k == len(angles) - 1 else {})}
        (folder / f"inputs_2d_{k}.json").write_text(json.dumps(inputs))
    return folder


def test_split_is_per_friction_angle_last_index_tests_next_validates():
    angles = {0: 20, 1: 20, 2: 20, 3: 30, 7: 30, 5: 30, 9: 30}
    assert split_of(angles) == {2: "test", 1: "valid", 0: "train",
                                9: "test", 7: "valid", 5: "train", 3: "train"}


def test_converts_with_the_friction_coefficient_as_material(tmp_path):
    source = taichi_folder(tmp_path / "geo", [20, 20, 20, 35, 35, 35])
    assert detect_format(source) == "taichi_mpm"
    out = convert(source, tmp_path / "ours")
    metadata = read_metadata(out)
    assert metadata["dt"] == 0.0025 and metadata["bounds"] == [[0.1, 0.9], [0.1, 0.9]]
    assert metadata["gravity"] == [0, -9.81]
    assert metadata["source"]["splits"] == {"0": "train", "1": "valid", "2": "test",
                                            "3": "train", "4": "valid", "5": "test"}
    train = TrajectoryDataset(out, "train", 2)
    materials = sorted(float(train[k]["material"][0]) for k in range(len(train)))
    assert materials == pytest.approx([math.tan(math.radians(20)), math.tan(math.radians(35))])
    original = np.load(source / "trajectory3.npz", allow_pickle=True)["trajectory3"][0]  # our own file
    assert np.array_equal(train[1]["position"], original)


def test_trajectories_of_different_boxes_are_refused_naming_the_file(tmp_path):
    source = taichi_folder(tmp_path / "geo", [20, 20, 25], mpm_dt=0.005)
    with pytest.raises(DatasetError, match=r"inputs_2d_2\.json: mpm_dt 0\.005 differs"):
        convert(source, tmp_path / "ours")
    assert not (tmp_path / "ours").exists()


def test_a_friction_angle_outside_0_90_is_refused(tmp_path):
    source = taichi_folder(tmp_path / "geo", [20, 20, 95])
    with pytest.raises(DatasetError, match=r"inputs_2d_2\.json: friction_angle must be in \(0, 90\)"):
        convert(source, tmp_path / "ours")


@needs_shared("geoelements-sand2d")
def test_the_shared_geoelements_sand_converts_30_5_5(tmp_path):
    out = convert(GEO_SAND, tmp_path / "geo-sand")
    metadata = read_metadata(out)
    assert [metadata[f"num_trajectories_{s}"] for s in ("train", "valid", "test")] == [30, 5, 5]
    assert metadata["sequence_length"] == 349 and metadata["default_connectivity_radius"] == 0.025
    test = TrajectoryDataset(out, "test", 2)
    angles = sorted(round(math.degrees(math.atan(float(test[k]["material"][0])))) for k in range(5))
    assert angles == [20, 25, 30, 35, 40]  # one held-out trajectory per friction angle
