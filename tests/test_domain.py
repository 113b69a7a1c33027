"""The box of a dataset (gnsim/domain.py): one reader of bounds, periodic axes and gravity."""

import h5py
import numpy as np
import pytest
import torch

from gnsim.baselines import gravity_per_frame
from gnsim.dataset import read_metadata
from gnsim.domain import Domain, minimum_image
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig
from simulators.generate import generate

METADATA = {"bounds": [[0.0, 1.0], [0.0, 2.0]], "dim": 2, "dt": 0.01, "vel_mean": [0.0, 0.0],
            "vel_std": [0.01, 0.01], "acc_mean": [0.0, -0.0005], "acc_std": [0.001, 0.001],
            "default_connectivity_radius": 0.1}


def recomputed_statistics(folder, length: np.ndarray, periodic: np.ndarray) -> tuple:
    """Velocity and acceleration std of the moving particles, written out here independently."""
    velocities, accelerations, raw = [], [], []
    with h5py.File(folder / "train.h5") as file:
        for group in file.values():
            x = group["position"][...].astype(np.float64)[:, group["particle_type"][...] != 3]
            d = np.diff(x, axis=0)
            wrapped = np.where(periodic, d - length * np.round(d / length), d)
            velocities.append(wrapped.reshape(-1, x.shape[-1]))
            accelerations.append(np.diff(wrapped, axis=0).reshape(-1, x.shape[-1]))
            raw.append(np.diff(x, axis=0).reshape(-1, x.shape[-1]))
    return (np.concatenate(velocities).std(0), np.concatenate(accelerations).std(0),
            np.concatenate(raw).std(0))


@pytest.mark.parametrize("recipe", ["tgv-2d", "rpf-2d", pytest.param("tgv-3d", marks=pytest.mark.slow),
                                    pytest.param("rpf-3d", marks=pytest.mark.slow)])
def test_generated_periodic_datasets_carry_minimum_image_statistics(tmp_path, recipe):
    out = generate(recipe, tmp_path / recipe, splits={"train": 1, "valid": 0, "test": 0}, frames=40,
                   device="cpu")
    metadata = read_metadata(out)
    domain = Domain.from_metadata(metadata)
    assert domain.is_periodic
    vel_std, acc_std, raw_vel_std = recomputed_statistics(out, domain.length, domain.periodic)
    np.testing.assert_allclose(metadata["vel_std"], vel_std, rtol=0.02)
    np.testing.assert_allclose(metadata["acc_std"], acc_std, rtol=0.02)
    assert (raw_vel_std > 2 * vel_std).any()  # particles did wrap: plain differences would be wrong


def test_minimum_image_agrees_in_numpy_and_torch():
    d = np.array([[0.9, 0.9], [-0.6, 0.2]])
    expected = [[-0.1, 0.9], [0.4, 0.2]]  # the first axis wraps at 1 m
    np.testing.assert_allclose(minimum_image(d, np.array([1.0, 1.0]), np.array([True, False])), expected)
    folded = minimum_image(torch.tensor(d), torch.tensor([1.0, 1.0]), torch.tensor([True, False]))
    np.testing.assert_allclose(folded.numpy(), expected)


def model_gravity(metadata: dict):
    config = SimulatorConfig(latent_size=8, mlp_hidden_size=8, message_passing_steps=1,
                             conserve_momentum=True)
    simulator = LearnedSimulator(config, metadata)
    constant = simulator.gravity(Domain.from_metadata(metadata))
    return None if constant is None else simulator.acceleration_normalizer.inverse(constant).numpy()


def test_a_gravity_vector_is_the_same_constant_for_the_model_the_baseline_and_the_diagnostics():
    metadata = {**METADATA, "gravity": [0.0, -9.81]}
    per_frame = [0.0, -9.81 * 0.01**2]
    np.testing.assert_allclose(model_gravity(metadata), per_frame, rtol=1e-6)
    assert gravity_per_frame(metadata)[1] == "gravity"
    np.testing.assert_allclose(gravity_per_frame(metadata)[0], per_frame)
    np.testing.assert_allclose(Domain.from_metadata(metadata).gravity, [0.0, -9.81])  # the diagnostics'


@pytest.mark.parametrize("where", ["missing", "under scene"])
def test_gravity_missing_or_only_under_scene_is_no_gravity_to_all_of_them(where):
    metadata = {**METADATA, **({"scene": {"gravity": [0.0, -9.81]}} if where == "under scene" else {})}
    assert model_gravity(metadata) is None  # the conserving decoder then learns its constant
    assert gravity_per_frame(metadata)[1] == "acc_mean"  # the baseline's estimate
    assert Domain.from_metadata(metadata).gravity is None


@pytest.mark.parametrize("gravity", [-9.81, [0.0, -9.81, 0.0]])
def test_a_scalar_or_a_wrong_length_gravity_is_one_error_for_all_of_them(gravity):
    metadata = {**METADATA, "gravity": gravity}
    message = rf"metadata 'gravity' must have 2 entries, got {gravity!r}".replace("[", r"\[")
    for reader in (Domain.from_metadata, gravity_per_frame, model_gravity):
        with pytest.raises(ValueError, match=message):
            reader(metadata)


def test_walls_are_the_bounds_except_on_periodic_axes():
    domain = Domain.from_metadata({**METADATA, "periodic_boundary_conditions": [True, False]})
    np.testing.assert_array_equal(domain.walls, [[-np.inf, np.inf], [0.0, 2.0]])
    with pytest.raises(ValueError, match="'periodic_boundary_conditions' must have 2 entries"):
        Domain.from_metadata({**METADATA, "periodic_boundary_conditions": [True]})
