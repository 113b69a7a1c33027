"""Rollout metrics and baselines against values computed by hand on small arrays."""

import math

import numpy as np
import pytest
import torch

from gnsim.baselines import (
    baseline_predictions,
    constant_acceleration_one_step,
    constant_velocity_gravity_rollout,
    constant_velocity_rollout,
    gravity_per_frame,
)
from gnsim.domain import periodic_box
from gnsim.metrics import (
    SCORECARD,
    aggregate,
    blow_up_frame,
    evaluate_rollout,
    format_table,
    fraction_outside,
    horizon_mse,
    kinetic_energy,
    kinetic_energy_error,
    kinetic_energy_relative_error,
    losing_rows,
    nearest_neighbour_spacing,
    one_step_mse,
    position_mse,
    selection_score,
    sinkhorn_distance,
)

BOUNDS = [[0.0, 1.0], [0.0, 1.0]]
METADATA = {
    "dim": 2,
    "dt": 0.5,
    "bounds": BOUNDS,
    "default_connectivity_radius": 0.1,
    "acc_mean": [0.0, -0.001],
    "vel_mean": [0, 0],
    "vel_std": [1, 1],
    "acc_std": [1, 1],
}


def test_position_mse_averages_over_moving_particles_and_coordinates():
    target = np.zeros((2, 3, 2))
    predicted = target.copy()
    predicted[1, 0] = [0.1, 0.2]  # water particle: squared errors 0.01 + 0.04
    predicted[1, 2] = [5.0, 5.0]  # boundary particle: ignored
    particle_type = np.array([5, 5, 3])
    # frame 1: (0.01 + 0.04) / (2 particles * 2 coordinates) = 0.0125
    np.testing.assert_allclose(position_mse(predicted, target, particle_type), [0.0, 0.0125])
    assert one_step_mse(predicted, target, particle_type) == pytest.approx(0.00625)


def test_position_mse_accepts_torch_and_numpy_alike():
    predicted = torch.full((1, 2, 3), 0.5)
    assert position_mse(predicted, np.zeros((1, 2, 3)))[0] == pytest.approx(0.25)


def test_horizon_mse_averages_the_first_h_predicted_frames():
    frame_mse = np.array([0.0] * 6 + [1.0, 2.0, 3.0, 4.0] + [10.0] * 10)  # 14 predicted frames
    result = horizon_mse(frame_mse, input_frames=6)
    assert result["mse_1"] == 1.0
    assert result["mse_10"] == pytest.approx((1 + 2 + 3 + 4 + 6 * 10) / 10)  # 7.0
    assert result["mse_100"] is None  # rollout shorter than the horizon
    assert result["mse_rollout"] == pytest.approx((1 + 2 + 3 + 4 + 10 * 10) / 14)


def test_kinetic_energy_uses_unit_masses_and_the_dataset_dt():
    # one particle moving 0.1 m per frame along x, dt = 0.5 s: v = 0.2 m/s, E = 0.02 J
    position = np.zeros((3, 2, 2))
    position[:, 0, 0] = [0.0, 0.1, 0.2]
    position[:, 1, 1] = [0.0, 0.0, 0.3]  # second particle: still, then v = 0.6 m/s -> E = 0.18 J
    np.testing.assert_allclose(kinetic_energy(position, dt=0.5), [0.02, 0.02 + 0.18])
    np.testing.assert_allclose(kinetic_energy(position, 0.5, particle_type=[5, 3]), [0.02, 0.02])
    still = np.zeros_like(position)
    np.testing.assert_allclose(kinetic_energy_error(still, position, 0.5), [0.02, 0.20])


def test_fraction_outside_counts_moving_particles_beyond_the_bounds():
    position = np.array(
        [
            [[0.5, 0.5], [0.5, 0.5], [1.5, 0.5], [-1.0, -1.0]],
            [[0.5, 1.2], [np.nan, 0.5], [0.5, 0.5], [-1.0, -1.0]],
        ]
    )
    particle_type = np.array([5, 5, 5, 3])  # the boundary particle outside is not counted
    np.testing.assert_allclose(fraction_outside(position, BOUNDS, particle_type), [1 / 3, 2 / 3])
    np.testing.assert_allclose(
        fraction_outside(position, BOUNDS, particle_type, margin=0.3), [1 / 3, 1 / 3]
    )


def test_blow_up_frame_is_the_first_frame_with_nan_or_escaped_particles():
    position = np.full((5, 2, 2), 0.5)
    position[2, 0] = [1.05, 0.5]  # 0.05 outside: a leak, not an escape (margin 0.1 of 1 m)
    assert blow_up_frame(position, BOUNDS) is None
    position[3, 1] = [0.5, 1.2]  # 0.2 outside: escaped
    position[4, 0] = np.nan
    assert blow_up_frame(position, BOUNDS) == 3
    position[3, 1] = [0.5, 0.5]
    assert blow_up_frame(position, BOUNDS) == 4


def test_sinkhorn_is_zero_for_identical_sets_and_the_shift_length_for_a_translation():
    rng = np.random.default_rng(0)
    cloud = rng.uniform(0, 1, (1, 200, 2))
    permuted = cloud[:, rng.permutation(200)]  # same set, particles in another order
    shift = np.array([0.03, 0.04])  # |shift| = 0.05 m
    distance = sinkhorn_distance(
        np.concatenate([cloud, cloud + shift, cloud + 2 * shift]),
        np.concatenate([permuted, cloud, cloud]),
        blur=0.01,
    )
    assert distance[0] == pytest.approx(0.0, abs=1e-3)
    assert distance[1] == pytest.approx(0.05, rel=1e-3)
    assert distance[2] == pytest.approx(0.10, rel=1e-3)


def test_sinkhorn_ignores_kinematic_particles_and_flags_nan_frames():
    cloud = np.random.default_rng(1).uniform(0, 1, (2, 50, 2))
    predicted = cloud.copy()
    predicted[:, :10] += 1.0  # boundary particles displaced: ignored
    predicted[1, 20] = np.nan
    particle_type = np.array([3] * 10 + [5] * 40)
    distance = sinkhorn_distance(predicted, cloud, blur=0.01, particle_type=particle_type)
    assert distance[0] == pytest.approx(0.0, abs=1e-3)
    assert distance[1] == np.inf


def test_constant_velocity_rollout_extrapolates_the_last_input_velocity():
    frames = np.arange(10, dtype=np.float64)
    position = np.zeros((10, 2, 2))
    position[:, 0, 0] = 0.01 * frames**2  # accelerating: last input velocity x(5) - x(4) = 0.09
    position[:, 1, 1] = np.sin(frames)  # a boundary particle: must follow the ground truth
    predicted = constant_velocity_rollout(position, np.array([5, 3]))
    np.testing.assert_allclose(predicted[:6], position[:6], atol=1e-7)
    np.testing.assert_allclose(predicted[6:, 0, 0], 0.25 + 0.09 * np.arange(1, 5), atol=1e-6)
    np.testing.assert_allclose(predicted[:, 1], position[:, 1], atol=1e-6)


def test_constant_velocity_gravity_rollout_falls_with_g_dt_squared():
    metadata = {**METADATA, "gravity": [0.0, -10.0]}  # dt = 0.5 s: 2.5 m per frame² downwards
    acceleration, source = gravity_per_frame(metadata)
    assert source == "gravity"
    np.testing.assert_allclose(acceleration, [0.0, -2.5])
    position = np.zeros((9, 1, 2))
    predicted = constant_velocity_gravity_rollout(position, np.array([5]), metadata)
    # at rest, then semi-implicit Euler: v = -2.5, -5, -7.5 -> y = -2.5, -7.5, -15
    np.testing.assert_allclose(predicted[6:, 0, 1], [-2.5, -7.5, -15.0])


def test_gravity_falls_back_to_acc_mean_where_the_top_level_names_none():
    assert gravity_per_frame(METADATA)[1] == "acc_mean"
    np.testing.assert_allclose(gravity_per_frame(METADATA)[0], [0.0, -0.001])
    # gnsim.domain reads the top level only: gravity under `scene` is no gravity (tests/test_domain.py)
    assert gravity_per_frame({**METADATA, "scene": {"gravity": [0.0, -9.81]}})[1] == "acc_mean"


def test_constant_velocity_one_step_predicts_from_true_history():
    position = np.zeros((8, 1, 1))
    position[:, 0, 0] = [0, 1, 4, 9, 16, 25, 36, 49]
    # frame 6 from frames 5, 4: 2*25 - 16 = 34; frame 7: 2*36 - 25 = 47
    np.testing.assert_allclose(constant_acceleration_one_step(position)[:, 0, 0], [34, 47])


def test_evaluate_rollout_reports_a_blow_up_without_crashing():
    rng = np.random.default_rng(2)
    target = rng.uniform(0.2, 0.8, (12, 30, 2)).astype(np.float32)
    particle_type = np.array([5] * 30)
    predicted = target.copy()
    predicted[9:, 0] = np.nan
    result = evaluate_rollout(predicted, target, particle_type, METADATA, sinkhorn_stride=2)
    assert result["blow_up_frame"] == 9
    assert result["mse_1"] == 0.0 and result["mse_rollout"] is None  # NaN in the mean -> None
    assert result["sinkhorn_frames"] == [6, 8, 10]
    assert result["sinkhorn_over_time"][0] == pytest.approx(0.0, abs=1e-3)
    assert result["sinkhorn_over_time"][2] is None
    clean = evaluate_rollout(target, target, particle_type, METADATA, one_step=target[6:])
    summary = aggregate([result, clean])
    assert summary["blow_ups"] == 1 and summary["trajectories"] == 2
    assert summary["mse_1"] == 0.0
    assert summary["mse_rollout"] is None  # undefined for one trajectory: not the other's value
    assert aggregate([clean, clean])["one_step_mse"] == 0.0


def test_baseline_predictions_hold_both_baselines_rollouts_and_one_steps():
    position = np.zeros((9, 2, 2), dtype=np.float32)
    metadata = {**METADATA, "gravity": [0.0, -4.0]}  # dt = 0.5 s: -1 m per frame²
    predictions = baseline_predictions(position, np.array([5, 3]), metadata)
    assert list(predictions) == ["constant_velocity", "constant_velocity_gravity"]
    rollout, one_step = predictions["constant_velocity_gravity"]
    np.testing.assert_allclose(rollout[6:, 0, 1], [-1.0, -3.0, -6.0])
    np.testing.assert_allclose(
        rollout[:, 1], 0.0
    )  # the boundary particle follows the (still) truth
    np.testing.assert_allclose(one_step[:, 0, 1], [-1.0, -1.0, -1.0])  # from true history at rest
    np.testing.assert_allclose(predictions["constant_velocity"][0], 0.0)


def test_with_hard_walls_the_baselines_stop_at_the_walls_and_not_across_periodic_axes():
    metadata = {**METADATA, "bounds": [[0.0, 1.0], [0.0, 1.0]], "gravity": [0.0, -4.0]}
    position = np.zeros((10, 1, 2))
    position[:, 0, 0] = 0.5 + 0.1 * np.arange(10)  # 0.1 m per frame towards the right wall
    position[:, 0, 1] = 0.5
    walled = baseline_predictions(position, np.array([5]), metadata, hard_walls=True)
    rollout, one_step = walled["constant_velocity"]
    np.testing.assert_allclose(rollout[6:, 0, 0], [1.0, 1.0, 1.0, 1.0], atol=1e-6)  # 1.1 clamped
    np.testing.assert_allclose(rollout[6:, 0, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(one_step[:, 0, 0], 1.0, atol=1e-6)
    # falling at -1 m per frame² from y = 0.5: on the floor from the first step on
    falling = walled["constant_velocity_gravity"][0]
    np.testing.assert_allclose(falling[6:, 0, 1], 0.0, atol=1e-6)
    free = baseline_predictions(position, np.array([5]), metadata)["constant_velocity"][0]
    assert free[-1, 0, 0] == pytest.approx(1.4)
    # a periodic axis has no walls: the particle goes on through the side and is wrapped
    periodic = {**metadata, "periodic_boundary_conditions": [True, False]}
    wrapped = free.copy()
    wrapped[6:, :, 0] = np.mod(free[6:, :, 0], 1.0)  # the 6 input frames are the truth's
    np.testing.assert_allclose(
        baseline_predictions(position, np.array([5]), periodic, hard_walls=True)["constant_velocity"][0],
        wrapped, atol=1e-6)


def test_format_table_has_a_row_per_method_and_dashes_for_undefined_metrics():
    table = format_table(
        {
            "model": {"mse_rollout": 0.000123, "blow_ups": 0, "mse_100": None},
            "constant_velocity": {"mse_rollout": 0.0456, "blow_ups": 2},
        }
    )
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["method", "one-step"] and set(lines[1]) == {"-"}
    assert lines[2].split()[0] == "model" and "0.000123" in lines[2] and lines[2].split()[-1] == "0"
    assert (
        lines[3].split()[0] == "constant_velocity"
        and "0.0456" in lines[3]
        and lines[3].endswith("2")
    )
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_sinkhorn_is_within_ten_percent_of_the_exact_transport_distance():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 1, (300, 2))
    predicted = truth + rng.normal(0, 0.03, truth.shape)  # jitter: particles swap partners
    # Equal-size sets with equal weights: optimal transport is an assignment (Birkhoff), solved exactly.
    cost = ((predicted[:, None] - truth[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    exact = np.sqrt(cost[rows, cols].mean())
    distance = sinkhorn_distance(predicted[None], truth[None], blur=0.0075)[0]
    assert exact < 0.03 * np.sqrt(2)  # reassignment beats the identity matching
    assert distance == pytest.approx(exact, rel=0.1)


def test_nearest_neighbour_spacing_reads_a_lattice_and_ignores_boundary_particles():
    grid = np.stack(np.meshgrid(np.arange(5), np.arange(4)), -1).reshape(-1, 2) * 0.02
    frames = np.stack([grid, 1.5 * grid, grid])  # frame 1: spread by half
    frames[2, 0] = np.nan
    particle_type = np.full(len(grid), 5)
    spacing = nearest_neighbour_spacing(frames, particle_type)
    np.testing.assert_allclose(spacing[:2], [0.02, 0.03])
    assert np.isnan(spacing[2])
    particle_type[1:] = 3  # one moving particle: no neighbour to measure
    assert np.isnan(nearest_neighbour_spacing(frames[:1], particle_type)).all()


def test_kinetic_energy_relative_error_is_the_error_over_the_true_energy():
    truth = np.zeros((4, 1, 2))
    truth[:, 0, 0] = [0.0, 1.0, 2.0, 3.0]  # 1 m per frame
    faster = truth * 2.0
    # dt = 1 s: true energy 0.5 J per interval, the faster one's 2 J
    assert kinetic_energy_relative_error(faster, truth, 1.0) == pytest.approx(3.0)
    assert kinetic_energy_relative_error(truth, truth, 1.0) == 0.0
    assert np.isnan(kinetic_energy_relative_error(truth, np.zeros_like(truth), 1.0))


def test_the_scorecard_names_every_lost_row_and_no_single_row_buys_the_selection_score():
    rows = dict.fromkeys(SCORECARD, 1.0)
    baselines = {"constant_velocity": rows, "constant_velocity_gravity": {**rows, "mse_10": 0.01}}
    model = dict.fromkeys(SCORECARD, 0.5)
    assert losing_rows({"model": model, **baselines}) == ["mse_10"]
    assert losing_rows({"model": {**model, "sinkhorn_mean": None}, **baselines}) == ["mse_10", "sinkhorn_mean"]
    # Halving every row's error halves the score; one row 1000x better and the rest 2x worse does not win.
    assert selection_score({"model": model, **baselines}) == pytest.approx(
        math.exp((7 * math.log(0.5) + math.log(50)) / 8))
    gamed = {**dict.fromkeys(SCORECARD, 2.0), "mse_rollout": 1e-3}
    assert selection_score({"model": gamed, **baselines}) > 1.0
    assert selection_score({"model": {**model, "mse_1": None}, **baselines}) == math.inf


def test_in_a_periodic_box_every_difference_is_the_minimum_image():
    """A 10 x 10 lattice (spacing 0.1 m) drifting 0.03 m per frame through the sides of the
    periodic unit square, stored wrapped as a periodic dataset is: the jump of a wrapped particle
    is no error, no velocity and no gap in the structure."""
    metadata = {**METADATA, "bounds": [[0.0, 1.0], [0.0, 1.0]], "dt": 1.0,
                "periodic_boundary_conditions": [True, True]}
    box = periodic_box(metadata)
    lattice = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 2) * 0.1 + 0.05
    truth = box.wrap(lattice + 0.03 * np.arange(12)[:, None, None] * np.array([1.0, 0.0]))
    types = np.full(100, 5)
    rollout, one_step = baseline_predictions(truth, types, metadata)["constant_velocity"]
    assert position_mse(rollout, truth, types, box).max() < 1e-12
    assert position_mse(one_step, truth[6:], types, box).max() < 1e-12
    np.testing.assert_allclose(kinetic_energy(truth, 1.0, types, box), 100 * 0.5 * 0.03**2)
    assert kinetic_energy(truth, 1.0, types).max() > 1.0  # what the plain difference reads: the 1 m jumps
    np.testing.assert_allclose(nearest_neighbour_spacing(truth, types, box), 0.1, rtol=1e-6)
    # a cluster at the right side moved 0.04 m through it: transported 0.04 m, not across the box
    cluster = np.random.default_rng(0).uniform([0.97, 0.4], [0.99, 0.6], (1, 30, 2))
    moved = box.wrap(cluster + np.array([0.04, 0.0]))
    assert sinkhorn_distance(moved, cluster, blur=0.005, box=box)[0] == pytest.approx(0.04, rel=0.1)
    assert sinkhorn_distance(moved, cluster, blur=0.005)[0] > 0.5
