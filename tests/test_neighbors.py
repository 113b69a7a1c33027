"""gnsim.radius_graph against a brute-force O(N^2) oracle."""

import pytest
import torch

from gnsim import radius_graph
from gnsim.neighbors import _periodic_box, _vesin_pairs


def brute_force_radius_graph(positions, radius, batch=None, loop=False, bounds=None, periodic=None):
    """Every ordered pair with float64 (minimum-image) distance <= radius: the test oracle."""
    x = positions.double()
    difference = x[None, :, :] - x[:, None, :]
    if periodic is not None:
        side = torch.tensor([hi - lo for lo, hi in bounds], dtype=torch.float64)
        wrap = torch.tensor(periodic)
        difference = torch.where(
            wrap, difference - side * torch.round(difference / side), difference
        )
    close = (difference**2).sum(-1) <= radius**2
    if batch is not None:
        close &= batch[:, None] == batch[None, :]
    if not loop:
        close.fill_diagonal_(False)
    receiver, sender = close.nonzero(as_tuple=True)
    return torch.stack([sender, receiver])


def edge_set(edge_index):
    return set(map(tuple, edge_index.T.tolist()))


def assert_same_edges(actual, expected):
    assert actual.dtype == torch.int64 and actual.shape[0] == 2
    assert actual.shape[1] == len(edge_set(actual)), "duplicate edges"
    assert edge_set(actual) == edge_set(expected)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("loop", [False, True])
def test_random_sets_match_the_oracle(dim, loop):
    positions = torch.rand(800, dim, generator=torch.Generator().manual_seed(dim))
    radius = 0.08 if dim == 2 else 0.15
    expected = brute_force_radius_graph(positions, radius, loop=loop)
    assert expected.shape[1] > 800 * 5  # a real graph, not a trivial one
    assert_same_edges(radius_graph(positions, radius, loop=loop), expected)


@pytest.mark.parametrize("dim", [2, 3])
def test_pairs_at_radius_plus_and_minus_a_millionth_are_cut_exactly(dim):
    radius = 0.015
    direction = torch.randn(dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    direction /= direction.norm()
    inside = torch.stack([torch.zeros(dim, dtype=torch.float64), direction * radius * (1 - 1e-6)])
    outside = (
        torch.stack([torch.zeros(dim, dtype=torch.float64), direction * radius * (1 + 1e-6)]) + 1.0
    )
    positions = torch.cat([inside, outside]).float()
    edges = radius_graph(positions, radius)
    assert edge_set(edges) == {(0, 1), (1, 0)}
    assert_same_edges(edges, brute_force_radius_graph(positions, radius))


def test_empty_set_and_single_particle_have_no_edges():
    assert radius_graph(torch.zeros(0, 2), 0.1).shape == (2, 0)
    assert radius_graph(torch.zeros(1, 3), 0.1).shape == (2, 0)
    assert edge_set(radius_graph(torch.zeros(1, 3), 0.1, loop=True)) == {(0, 0)}


def test_batch_of_sets_of_different_sizes_never_crosses_graphs():
    generator = torch.Generator().manual_seed(2)
    sizes = [5, 0, 300, 1, 120]
    # All sets overlap in space: only the batch vector keeps them apart.
    positions = torch.cat([torch.rand(n, 2, generator=generator) for n in sizes])
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    edges = radius_graph(positions, 0.1, batch=batch)
    assert (batch[edges[0]] == batch[edges[1]]).all()
    assert_same_edges(edges, brute_force_radius_graph(positions, 0.1, batch=batch))


def test_dense_cluster_keeps_every_neighbour_without_a_cap():
    positions = torch.rand(400, 3, generator=torch.Generator().manual_seed(3)) * 0.1
    edges = radius_graph(positions, 0.1)
    degree = torch.bincount(edges[1], minlength=400)
    assert degree.min() >= 200, degree.min()
    assert_same_edges(edges, brute_force_radius_graph(positions, 0.1))


def test_output_order_is_deterministic():
    positions = torch.rand(2000, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(radius_graph(positions, 0.1), radius_graph(positions.clone(), 0.1))


@pytest.mark.parametrize("periodic", [[True, True, True], [True, False, True]])
def test_periodic_box_uses_minimum_image(periodic):
    bounds = [[0.0, 1.0], [-0.5, 0.5], [2.0, 3.0]]
    generator = torch.Generator().manual_seed(5)
    positions = torch.rand(500, 3, generator=generator) + torch.tensor([0.0, -0.5, 2.0])
    edges = radius_graph(positions, 0.12, bounds=bounds, periodic=periodic)
    assert_same_edges(
        edges, brute_force_radius_graph(positions, 0.12, bounds=bounds, periodic=periodic)
    )


def test_periodic_box_smaller_than_two_radii_lists_each_pair_once():
    # Like LagrangeBench's 3D_LJ_3: side 5, radius 3.
    bounds = [[0.0, 5.0]] * 3
    positions = torch.rand(6, 3, generator=torch.Generator().manual_seed(6)) * 5
    edges = radius_graph(positions, 3.0, bounds=bounds, periodic=[True] * 3)
    assert_same_edges(
        edges, brute_force_radius_graph(positions, 3.0, bounds=bounds, periodic=[True] * 3)
    )


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("periodic", [None, True])
def test_vesin_backend_used_on_cuda_matches_the_oracle(dim, periodic):
    # The CUDA path runs the same vesin-torch call on the CPU here.
    positions = torch.rand(600, dim, generator=torch.Generator().manual_seed(7))
    bounds = [[0.0, 1.0]] * dim
    flags = None if periodic is None else [True] * dim
    edges = _vesin_pairs(positions, 0.1, _periodic_box(bounds, flags, dim))
    assert_same_edges(
        edges, brute_force_radius_graph(positions, 0.1, bounds=bounds, periodic=flags)
    )
    assert torch.equal(edges, _vesin_pairs(positions, 0.1, _periodic_box(bounds, flags, dim)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("periodic", [None, True])
def test_cuda_positions_give_the_oracle_edges_on_the_device(dim, periodic):
    # On CUDA radius_graph searches with vesin-torch on the device, per graph of the batch.
    pytest.importorskip("vesin_torch")
    positions = torch.rand(700, dim, generator=torch.Generator().manual_seed(8))
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([300, 400]))
    bounds = [[0.0, 1.0]] * dim
    flags = None if periodic is None else [True] * dim
    edges = radius_graph(positions.cuda(), 0.1, batch=batch.cuda(), bounds=bounds, periodic=flags)
    assert edges.is_cuda
    assert_same_edges(
        edges.cpu(),
        brute_force_radius_graph(positions, 0.1, batch=batch, bounds=bounds, periodic=flags),
    )


def test_bad_input_is_refused_with_a_message():
    with pytest.raises(ValueError, match=r"positions must be \[N, 2\] or \[N, 3\]"):
        radius_graph(torch.zeros(4), 0.1)
    with pytest.raises(ValueError, match="radius must be positive"):
        radius_graph(torch.zeros(4, 2), 0.0)
    with pytest.raises(ValueError, match="batch must be sorted"):
        radius_graph(torch.zeros(3, 2), 0.1, batch=torch.tensor([1, 0, 1]))


def test_large_sets_split_across_threads_match_the_oracle(monkeypatch):
    # Above _PARALLEL_FROM particles, slabs along x are searched in parallel: check the seams.
    import gnsim.neighbors

    monkeypatch.setattr(gnsim.neighbors, "_PARALLEL_FROM", 100)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    positions = torch.rand(1500, 3, generator=torch.Generator().manual_seed(9))
    positions[:10, 0] = positions[10, 0]  # ties on the cut coordinate
    assert_same_edges(radius_graph(positions, 0.12), brute_force_radius_graph(positions, 0.12))


def test_particles_without_a_finite_position_have_no_neighbours_and_the_rest_keep_theirs():
    positions = torch.rand(300, 2, generator=torch.Generator().manual_seed(10))
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([150, 150]))
    broken = positions.clone()
    broken[[3, 160]] = torch.tensor([float("nan"), float("inf")])[:, None]
    edges = radius_graph(broken, 0.1, batch=batch, loop=True)
    expected = brute_force_radius_graph(positions, 0.1, batch=batch, loop=True)
    lost = torch.isin(expected, torch.tensor([3, 160])).any(dim=0) & (expected[0] != expected[1])
    assert_same_edges(edges, expected[:, ~lost])
