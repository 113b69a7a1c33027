"""The GNS model: symmetries, noise, message passing, integration and rollout, on real trajectories."""

import itertools
import math

import pytest
import torch

from gnsim import WindowDataset, read_metadata
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig
from gnsim.rollout import rollout
from gnsim.strategies import add_training_noise, random_walk_noise

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = SimulatorConfig(
    latent_size=32, mlp_hidden_size=32, message_passing_steps=3, particle_type_embedding_size=4
)


def make_simulator(metadata, config=SMALL, seed=0):
    torch.manual_seed(seed)
    return LearnedSimulator(config, metadata).eval()


def window(folder, index=60):
    """Positions [N, 6, 2], target [N, 2] and types [N] of one window while the block hits the floor."""
    sample = WindowDataset(folder, "train")[index]
    sequence = sample["position"].transpose(0, 1)
    return sequence[:, :-1], sequence[:, -1], sample["particle_type"]


def test_predictions_are_invariant_to_translating_the_scene_with_its_walls(falling_blocks):
    metadata = read_metadata(falling_blocks)
    position, _, particle_type = window(falling_blocks)
    shift = torch.tensor([0.375, -0.25])
    moved = {
        **metadata,
        "bounds": [[lo + s, hi + s] for (lo, hi), s in zip(metadata["bounds"], shift.tolist())],
    }
    simulator, moved_simulator = make_simulator(metadata), make_simulator(moved)
    with torch.no_grad():
        acceleration = simulator(position, particle_type)
        moved_acceleration = moved_simulator(position + shift, particle_type)
        next_position = simulator.predict_position(position, particle_type)
        moved_next_position = moved_simulator.predict_position(position + shift, particle_type)
    assert acceleration.std(dim=0).min() > 0.01  # a real output, varying across particles
    assert (acceleration - moved_acceleration).abs().max() < 1e-4, (
        (acceleration - moved_acceleration).abs().max()
    )
    assert torch.allclose(next_position + shift, moved_next_position, atol=1e-6)


def test_predictions_are_equivariant_to_permuting_the_particles(falling_blocks):
    simulator = make_simulator(read_metadata(falling_blocks))
    position, _, particle_type = window(falling_blocks)
    permutation = torch.randperm(len(particle_type), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        acceleration = simulator(position, particle_type)
        permuted = simulator(position[permutation], particle_type[permutation])
    assert torch.allclose(acceleration[permutation], permuted, atol=1e-5)


def test_noise_has_the_stated_std_at_the_last_input_velocity():
    position = torch.zeros(200_000, 6, 2)
    noise = random_walk_noise(position, 6.7e-4, torch.Generator().manual_seed(0))
    velocity_noise = noise[:, 1:] - noise[:, :-1]
    assert torch.equal(noise[:, 0], torch.zeros(200_000, 2))  # the first position stays clean
    assert math.isclose(velocity_noise[:, -1].std().item(), 6.7e-4, rel_tol=0.01)
    # a random walk: the std at velocity k of 5 grows as sqrt(k / 5)
    assert math.isclose(velocity_noise[:, 0].std().item(), 6.7e-4 / math.sqrt(5), rel_tol=0.01)


def test_noise_spares_kinematic_particles_and_shifts_the_target_by_the_last_input_noise():
    position, target = torch.zeros(1000, 6, 2), torch.ones(1000, 2)
    particle_type = torch.tensor([5, 3] * 500)
    noisy, adjusted = add_training_noise(
        position, target, particle_type, 1e-3, torch.Generator().manual_seed(0)
    )
    assert torch.equal(noisy[1::2], position[1::2]) and torch.equal(adjusted[1::2], target[1::2])
    assert noisy[0::2].abs().max() > 0
    assert torch.allclose(adjusted - target, noisy[:, -1] - position[:, -1], atol=1e-7)


def test_position_correcting_noise_targets_the_true_next_position():
    position, target = torch.zeros(1000, 6, 2), torch.ones(1000, 2)
    particle_type = torch.tensor([5, 3] * 500)
    generator = torch.Generator().manual_seed(0)
    noisy, corrected = add_training_noise(
        position, target, particle_type, 1e-3, generator, correct_position=True
    )
    same_noise, _ = add_training_noise(
        position, target, particle_type, 1e-3, torch.Generator().manual_seed(0)
    )
    assert torch.equal(noisy, same_noise)  # only the target differs from the paper's
    assert torch.equal(corrected, target)


def test_partial_velocity_correction_keeps_the_rest_of_the_velocity_noise_in_the_target():
    position = torch.linspace(0, 1, 6)[None, :, None].repeat(1000, 1, 2)  # moving at 0.2 per frame
    target, particle_type = torch.full((1000, 2), 1.2), torch.tensor([5, 3] * 500)
    noisy, partial = add_training_noise(
        position, target, particle_type, 1e-3, torch.Generator().manual_seed(0),
        correct_position=True, velocity_correction=0.25,
    )
    velocity_noise = (noisy[:, -1] - noisy[:, -2]) - (position[:, -1] - position[:, -2])
    assert velocity_noise[0::2].abs().max() > 0 and torch.equal(partial[1::2], target[1::2])
    # The model is asked to undo a quarter of the velocity error; three quarters carry forward.
    assert torch.allclose(partial - target, 0.75 * velocity_noise, atol=1e-6)


def test_normalisation_combines_the_dataset_std_with_the_noise_in_quadrature(falling_blocks):
    metadata = read_metadata(falling_blocks)
    simulator = make_simulator(metadata)
    expected = torch.tensor([math.hypot(s, 6.7e-4) for s in metadata["acc_std"]])
    assert torch.allclose(simulator.acceleration_normalizer.std, expected)
    expected = torch.tensor([math.hypot(s, 6.7e-4) for s in metadata["vel_std"]])
    assert torch.allclose(simulator.velocity_normalizer.std, expected)


def test_edge_latents_change_in_every_message_passing_step(falling_blocks):
    simulator = make_simulator(read_metadata(falling_blocks))
    position, _, particle_type = window(falling_blocks)
    edge_index = simulator.connectivity(position[:, -1])
    network = simulator.graph_network
    with torch.no_grad():
        node_latent, edge_latent = network.encode(
            *simulator.features(position, particle_type, edge_index)[:2]
        )
        edges = [edge_latent] + [
            e for _, e in network.process_steps(node_latent, edge_latent, edge_index)
        ]
    assert len(edges) == 1 + SMALL.message_passing_steps and edge_index.shape[1] > 100
    for before, after in itertools.pairwise(edges):
        change = (after - before).abs().mean() / before.abs().mean()
        assert change > 0.05, f"edge latents barely changed ({change:.2g})"


def test_unshared_and_shared_weights_give_one_or_m_interaction_networks(falling_blocks):
    metadata = read_metadata(falling_blocks)
    assert len(make_simulator(metadata).graph_network.processor) == 3
    shared = SimulatorConfig(**{**SMALL.as_dict(), "shared_weights": True})
    assert len(make_simulator(metadata, shared).graph_network.processor) == 1


def test_integration_inverts_the_target_acceleration(falling_blocks):
    simulator = make_simulator(read_metadata(falling_blocks))
    position, target, _ = window(falling_blocks)
    acceleration = simulator.normalized_acceleration_target(target, position)
    assert torch.allclose(simulator.integrate(acceleration, position), target, atol=1e-6)
    # semi-implicit Euler, dt = 1 frame: x' = x + (x - x_prev) + a
    raw = simulator.acceleration_normalizer.inverse(acceleration)
    assert torch.allclose(target, 2 * position[:, -1] - position[:, -2] + raw, atol=1e-6)


def test_hard_walls_keep_predictions_inside_the_box_and_change_nothing_inside(falling_blocks):
    metadata = read_metadata(falling_blocks)
    learned, hard = (
        make_simulator(metadata, SimulatorConfig(**{**SMALL.as_dict(), "hard_walls": walls}))
        for walls in (False, True)
    )
    position, target, _ = window(falling_blocks)
    acceleration = learned.normalized_acceleration_target(target, position)
    assert torch.equal(
        hard.integrate(acceleration, position), learned.integrate(acceleration, position)
    )
    (low_x, high_x), (low_y, _) = metadata["bounds"]
    shift = torch.tensor([-0.5 * (high_x - low_x), 0.0])  # flings the block through the left wall
    free, walled = (
        sim.integrate(acceleration + sim.acceleration_normalizer(shift), position)
        for sim in (learned, hard)
    )
    assert (free[:, 0] < low_x).any()
    assert (walled[:, 0] >= low_x).all() and (walled[:, 1] >= low_y).all()
    assert torch.allclose(walled, torch.maximum(free, torch.tensor([low_x, -math.inf])), atol=1e-6)


def test_hard_walls_leave_a_periodic_axis_wrapping(falling_blocks):
    metadata = {**read_metadata(falling_blocks), "periodic_boundary_conditions": [True, False]}
    config = SimulatorConfig(**{**SMALL.as_dict(), "hard_walls": True})
    simulator = make_simulator(metadata, config)
    position, target, _ = window(falling_blocks)
    (low_x, high_x), (low_y, _) = metadata["bounds"]
    fling = simulator.acceleration_normalizer(torch.tensor([-0.5 * (high_x - low_x), -1.0]))
    acceleration = simulator.normalized_acceleration_target(target, position) + fling
    moved = simulator.integrate(acceleration, position)
    assert (moved[:, 0] > 0.5 * (low_x + high_x)).any()  # came round the seam, not stopped at it
    assert (moved[:, 0] >= low_x).all() and (moved[:, 0] < high_x).all()
    assert torch.allclose(moved[:, 1], torch.full_like(moved[:, 1], low_y))  # the floor stops it


def test_wall_feature_range_lets_a_particle_see_walls_beyond_the_radius(falling_blocks):
    metadata = read_metadata(falling_blocks)  # unit box, R = 0.085
    far_config = SimulatorConfig(**{**SMALL.as_dict(), "wall_feature_range": 0.4})
    resting = [torch.tensor([0.5, height]).expand(1, 6, 2) for height in (0.2, 0.3)]
    water = torch.tensor([5])
    for config, sees_the_floor in ((SMALL, False), (far_config, True)):
        simulator = make_simulator(metadata, config)
        with torch.no_grad():
            low, high = (simulator(position, water) for position in resting)
        assert (not torch.allclose(low, high)) == sees_the_floor


def test_conserving_momentum_particles_cannot_push_themselves_away_from_walls(falling_blocks):
    metadata = {**read_metadata(falling_blocks), "gravity": [0.0, -9.81]}
    position, _, particle_type = window(falling_blocks)  # a block hitting the floor
    far = {**metadata, "bounds": [[lo - 1.0, hi + 1.0] for lo, hi in metadata["bounds"]]}
    config = SimulatorConfig(**{**SMALL.as_dict(), "conserve_momentum": True})
    totals = []
    for meta in (far, metadata):
        simulator = make_simulator(meta, config)
        with torch.no_grad():
            acceleration = simulator(position, particle_type)
        assert acceleration.std(dim=0).min() > 0.01  # the pair terms are real
        totals.append(acceleration.sum(dim=0) - len(position) * simulator.graph_network.decoder.bias)
    away, near = totals
    assert away.abs().max() < 1e-3, away  # the pair terms cancel: the block falls with the constant
    assert near.abs().max() > 0.1, near  # the floor pushes back
    # The constant is gravity, g dt^2 per frame, known from the metadata and not learned.
    constant = simulator.acceleration_normalizer.inverse(simulator.graph_network.decoder.bias)
    expected = torch.tensor(metadata["gravity"]) * metadata["dt"] ** 2
    assert torch.allclose(constant, expected, atol=1e-9)
    assert "graph_network.decoder.bias" not in dict(simulator.named_parameters())


def test_conserving_momentum_runs_under_bf16_autocast(falling_blocks):
    # As training does on CUDA (amp=auto); the pair terms are summed in float32.
    metadata = {**read_metadata(falling_blocks), "gravity": [0.0, -9.81]}
    position, _, particle_type = window(falling_blocks)
    simulator = make_simulator(metadata, SimulatorConfig(**{**SMALL.as_dict(), "conserve_momentum": True}))
    with torch.no_grad():
        exact = simulator(position, particle_type)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = simulator(position, particle_type)
    assert mixed.dtype == torch.float32
    assert (mixed - exact).abs().max() < 0.05 * exact.abs().max()


def test_conserving_momentum_needs_every_edge_reversed(falling_blocks):
    metadata = read_metadata(falling_blocks)
    position, _, particle_type = window(falling_blocks)
    simulator = make_simulator(metadata, SimulatorConfig(**{**SMALL.as_dict(), "conserve_momentum": True}))
    edges = simulator.connectivity(position[:, -1])
    first_pair = int(torch.nonzero(edges[0] != edges[1])[0])  # a self-edge is its own reverse
    one_way = torch.cat([edges[:, :first_pair], edges[:, first_pair + 1 :]], dim=1)
    with pytest.raises(ValueError, match="symmetric graph"):
        simulator(position, particle_type, one_way)


@pytest.mark.parametrize("self_edges", [True, False])
def test_the_graph_has_self_edges_by_default_as_the_published_gns(falling_blocks, self_edges):
    # Three particles on a line, 0.6 R and 0.9 R apart: pairs (0, 1) and (1, 2) are within R.
    config = SimulatorConfig(**{**SMALL.as_dict(), "self_edges": self_edges})
    assert SimulatorConfig().self_edges  # the default, as learning_to_simulate's connectivity_utils
    simulator = make_simulator(read_metadata(falling_blocks), config)
    radius = simulator.connectivity_radius
    position = torch.tensor([[0.3, 0.5], [0.3 + 0.6 * radius, 0.5], [0.3 + 1.5 * radius, 0.5]])
    pairs = {(0, 1), (1, 0), (1, 2), (2, 1)}
    expected = pairs | ({(0, 0), (1, 1), (2, 2)} if self_edges else set())
    assert set(map(tuple, simulator.connectivity(position).T.tolist())) == expected


def test_a_self_edge_adds_nothing_to_the_conserving_decoder(falling_blocks):
    metadata = read_metadata(falling_blocks)
    position, _, particle_type = window(falling_blocks)
    config = SimulatorConfig(**{**SMALL.as_dict(), "conserve_momentum": True})
    simulator = make_simulator(metadata, config)
    edges = simulator.connectivity(position[:, -1])
    decoder = simulator.graph_network.decoder
    latent = torch.randn(len(particle_type), config.latent_size)
    edge_latent = torch.randn(edges.shape[1], config.latent_size)
    gates = torch.zeros(len(particle_type), 2 * simulator.dim)
    loops = edges[0] == edges[1]
    assert bool(loops.any())
    with_loops = decoder(latent, edge_latent, edges, gates)
    without = decoder(latent, edge_latent[~loops], edges[:, ~loops], gates)
    torch.testing.assert_close(with_loops, without)


def test_material_parameters_enter_the_node_features(falling_blocks):
    config = SimulatorConfig(**{**SMALL.as_dict(), "material_features": 2})
    simulator = make_simulator(read_metadata(falling_blocks), config)
    position, _, particle_type = window(falling_blocks)
    material = torch.tensor([[0.5, 1.0]]).expand(len(particle_type), 2)
    with torch.no_grad():
        first = simulator(position, particle_type, material=material)
        second = simulator(position, particle_type, material=material * 3)
    assert (first - second).abs().max() > 1e-3


def test_rollout_starts_from_ground_truth_and_keeps_kinematic_particles_on_it(falling_blocks):
    from gnsim import TrajectoryDataset

    simulator = make_simulator(read_metadata(falling_blocks))
    trajectory = TrajectoryDataset(falling_blocks, "valid")[0]
    position, particle_type = trajectory["position"], trajectory["particle_type"]
    predicted = rollout(simulator, position, particle_type, steps=10)
    assert predicted.shape == (16, *position.shape[1:])
    assert torch.equal(predicted[:6], position[:6])
    kinematic = particle_type == 3
    assert torch.equal(predicted[:, kinematic], position[:16, kinematic])
    assert not torch.allclose(predicted[6:, ~kinematic], position[6:16, ~kinematic])
    # a batch of two copies rolls out as each alone
    both = rollout(
        simulator,
        torch.cat([position, position], dim=1),
        particle_type.repeat(2),
        steps=10,
        batch=torch.arange(2).repeat_interleave(len(particle_type)),
    )
    assert torch.allclose(both[:, len(particle_type) :], predicted, atol=1e-5)


def test_a_collapsing_scene_turns_nan_and_the_rest_of_the_batch_rolls_on(falling_blocks):
    from gnsim.metrics import blow_up_frame

    # A model that flings every particle into the lower-left corner, where hard walls pile them up.
    metadata = read_metadata(falling_blocks)
    simulator = make_simulator(metadata, SimulatorConfig(**{**SMALL.as_dict(), "hard_walls": True}))
    decoder = [m for m in simulator.graph_network.decoder.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        decoder[-1].weight.zero_()
        decoder[-1].bias.fill_(-100.0)
    # Scene 0: 36 still particles on a grid wider than the radius (no edges); scene 1: one particle.
    (x0, x1), (y0, y1) = metadata["bounds"]
    assert simulator.connectivity_radius < (x1 - x0) / 7
    grid = torch.stack(torch.meshgrid(torch.linspace(x0, x1, 8)[1:-1], torch.linspace(y0, y1, 8)[1:-1], indexing="ij"), -1)
    still = torch.cat([grid.reshape(36, 2), grid[3:4, 3]]).expand(30, 37, 2)
    particle_type = torch.full((37,), 5)
    predicted = rollout(simulator, still, particle_type, batch=torch.tensor([0] * 36 + [1]))
    frame = blow_up_frame(predicted[:, :36], metadata["bounds"])
    assert frame is not None and 6 < frame < 30
    assert torch.isnan(predicted[frame:, :36]).all() and torch.isfinite(predicted[:frame]).all()
    assert torch.isfinite(predicted[:, 36]).all()
    assert torch.allclose(predicted[-1, 36], torch.tensor([x0, y0]))  # in the corner, alone


def test_interaction_network_is_the_mlp_of_concatenated_edge_receiver_and_sender_latents():
    from gnsim.graph_network import InteractionNetwork

    torch.manual_seed(0)
    network = InteractionNetwork(latent_size=8, hidden_size=16, num_hidden_layers=2)
    node, edge = torch.randn(30, 8), torch.randn(100, 8)
    edge_index = torch.randint(0, 30, (2, 100))
    new_node, new_edge = network(node, edge, edge_index)
    sender, receiver = edge_index
    expected_edge = network.edge_function(torch.cat([edge, node[receiver], node[sender]], dim=-1))
    summed = torch.zeros(30, 8).index_add_(0, receiver, expected_edge)
    expected_node = network.node_function(torch.cat([node, summed], dim=-1))
    assert torch.allclose(new_edge, edge + expected_edge, atol=1e-5)
    assert torch.allclose(new_node, node + expected_node, atol=1e-5)


def test_particles_without_neighbours_are_still_predicted(falling_blocks):
    simulator = make_simulator(read_metadata(falling_blocks))
    position, _, particle_type = window(falling_blocks)
    loner = position[:1] * 0 + torch.tensor([0.95, 0.95])  # far from everyone, listed last
    with torch.no_grad():
        acceleration = simulator(
            torch.cat([position, loner]), torch.cat([particle_type, particle_type[:1]])
        )
    assert acceleration.shape == (len(particle_type) + 1, 2) and torch.isfinite(acceleration).all()


def test_in_a_periodic_box_predictions_follow_the_scene_across_the_seam(falling_blocks):
    metadata = {**read_metadata(falling_blocks), "periodic_boundary_conditions": [True, True]}
    simulator = make_simulator(metadata)
    position, _, particle_type = window(falling_blocks)
    shift = torch.tensor([0.5, 0.625])  # moves part of the block across both seams of [0, 1)^2
    wrapped = torch.remainder(position + shift, 1.0)
    assert ((position + shift) >= 1.0).any()
    with torch.no_grad():
        acceleration = simulator(position, particle_type)
        moved_acceleration = simulator(wrapped, particle_type)
        next_position = simulator.predict_position(wrapped, particle_type)
    assert (
        simulator.connectivity(wrapped[:, -1]).shape
        == simulator.connectivity(position[:, -1]).shape
    )
    assert (acceleration - moved_acceleration).abs().max() < 1e-4
    expected = torch.remainder(simulator.predict_position(position, particle_type) + shift, 1.0)
    assert torch.allclose(next_position, expected, atol=1e-5)
