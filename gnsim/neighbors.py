"""Connectivity-radius graphs: every ordered pair of particles closer than R, exactly.

Backends were chosen by measurement (benchmarks/neighbors.py): on CPU scipy's cKDTree beat
vesin and a Warp hash grid at GNS densities; on CUDA, vesin-torch's cell list runs on the device.
Neither caps the number of neighbours (PyG's `radius_graph` silently keeps at most 32).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree


def radius_graph(
    positions: torch.Tensor,
    radius: float,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    bounds: Sequence[Sequence[float]] | None = None,
    periodic: Sequence[bool] | None = None,
) -> torch.Tensor:
    """Edges `[2, E]` (row 0 sender, row 1 receiver) between particles within `radius`.

    `batch` (sorted graph ids, PyG's convention) keeps graphs apart. `bounds` ([[lo, hi]] per
    axis) with `periodic` (one bool per axis) makes distances minimum-image in a periodic box.
    Distances are computed in float64 from the given coordinates; a pair at exactly R is kept.
    """
    if positions.dim() != 2 or positions.shape[1] not in (2, 3):
        raise ValueError(f"radius_graph: positions must be [N, 2] or [N, 3], got {list(positions.shape)}")
    if radius <= 0:
        raise ValueError(f"radius_graph: radius must be positive, got {radius}")
    box = _periodic_box(bounds, periodic, positions.shape[1])
    counts = _graph_sizes(batch, len(positions))
    finite = torch.isfinite(positions).all(dim=1)
    if not bool(finite.all()):
        # A particle with no finite position (a blown-up rollout) has no neighbours; the rest
        # keep theirs, so one diverged scene in a batch does not stop the others.
        kept = finite.nonzero().flatten()
        edge_index = kept[radius_graph(positions[kept], radius, None if batch is None else batch[kept],
                                       False, bounds, periodic)]
        return _with_self_loops(edge_index, len(positions)) if loop else edge_index
    pieces, start = [], 0
    for count in counts:
        if count > 0:
            local = positions[start : start + count]
            search = _vesin_pairs if positions.is_cuda else _kdtree_pairs
            pieces.append(search(local, radius, box) + start)
        start += count
    edge_index = (
        torch.cat(pieces, dim=1) if pieces else torch.empty(2, 0, dtype=torch.long)
    ).to(positions.device)
    return _with_self_loops(edge_index, len(positions)) if loop else edge_index


def _with_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    nodes = torch.arange(num_nodes, device=edge_index.device)
    return torch.cat([edge_index, torch.stack([nodes, nodes])], dim=1)


def _graph_sizes(batch: torch.Tensor | None, num_nodes: int) -> list[int]:
    if batch is None:
        return [num_nodes]
    if batch.shape != (num_nodes,):
        raise ValueError(f"radius_graph: batch must have shape [{num_nodes}], got {list(batch.shape)}")
    if num_nodes > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("radius_graph: batch must be sorted (as torch_geometric's Batch makes it)")
    return torch.unique_consecutive(batch, return_counts=True)[1].tolist()


def _periodic_box(bounds, periodic, dim: int) -> np.ndarray | None:
    """Lower corner and side lengths of the periodic box, or None when no axis is periodic."""
    if periodic is None or not any(periodic):
        return None
    if bounds is None:
        raise ValueError("radius_graph: a periodic domain needs its bounds")
    bounds = np.asarray(bounds, dtype=np.float64)
    if bounds.shape != (dim, 2) or len(periodic) != dim:
        raise ValueError(f"radius_graph: bounds must be [{dim}, 2] and periodic must have {dim} entries")
    return np.stack([bounds[:, 0], bounds[:, 1] - bounds[:, 0], np.asarray(periodic, float)])


def _wrap_into_box(x: torch.Tensor, radius: float, box: np.ndarray | None):
    """Shift float64 coordinates into `[0, L)` per axis and return them with the box sides.

    Periodic axes wrap by their side; open axes get a side too wide to wrap within `radius`.
    """
    if box is None:
        return x, None
    lower, length, periodic = (torch.as_tensor(row, device=x.device) for row in box)
    x = x - lower
    is_open = periodic == 0
    x[:, is_open] -= x[:, is_open].min(dim=0).values
    side = torch.where(is_open, x.max(dim=0).values + 2 * radius + 1.0, length)
    return torch.remainder(x, side), side  # remainder maps a rounding x == L back to 0


def _kdtree_pairs(positions: torch.Tensor, radius: float, box: np.ndarray | None) -> torch.Tensor:
    x, side = _wrap_into_box(positions.detach().double(), radius, box)
    x, threads = x.numpy(), torch.get_num_threads()
    if side is None and len(x) >= _PARALLEL_FROM and threads > 1:
        pairs = _parallel_pairs(x, radius, threads)
    else:
        boxsize = None if side is None else side.numpy()
        pairs = _tree(x, boxsize).query_pairs(radius, output_type="ndarray")
    count = len(pairs)
    edges = np.empty((2, 2 * count), dtype=np.int64)  # both directions of each unordered pair
    edges[0, :count], edges[1, :count] = pairs[:, 0], pairs[:, 1]
    edges[0, count:], edges[1, count:] = pairs[:, 1], pairs[:, 0]
    return torch.from_numpy(edges)


def _tree(x: np.ndarray, boxsize: np.ndarray | None = None) -> cKDTree:
    # An unbalanced, non-compacted tree builds about 2x faster and queries as fast (measured).
    return cKDTree(x, boxsize=boxsize, balanced_tree=False, compact_nodes=False)


_PARALLEL_FROM = 50_000  # below this one tree beats threads (measured on 10k 2D and 100k 3D)
_POOL = ThreadPoolExecutor(max_workers=os.cpu_count())


def _parallel_pairs(x: np.ndarray, radius: float, slabs: int) -> np.ndarray:
    """Unordered pairs found by one tree per slab along axis 0, the slabs in parallel threads.

    A slab's tree also holds the particles up to `radius` above it, and keeps the pairs with at
    least one particle of its own: a pair across a cut is found once, by the lower slab.
    cKDTree releases the GIL, so the threads run on separate cores.
    """
    order = np.argsort(x[:, 0], kind="stable")
    coordinate = x[order, 0]
    cuts = coordinate[[len(x) * k // slabs for k in range(1, slabs)]]
    starts = np.searchsorted(coordinate, cuts, "left")
    owned_ends = np.append(starts, len(x))
    owned_starts = np.insert(starts, 0, 0)
    halo_ends = np.append(np.searchsorted(coordinate, cuts + radius, "right"), len(x))

    def slab_pairs(slab: int) -> np.ndarray:
        members = order[owned_starts[slab] : halo_ends[slab]]
        pairs = _tree(x[members]).query_pairs(radius, output_type="ndarray")
        owned = owned_ends[slab] - owned_starts[slab]
        return members[pairs[(pairs[:, 0] < owned) | (pairs[:, 1] < owned)]]

    return np.concatenate(list(_POOL.map(slab_pairs, range(slabs))))


def _vesin_pairs(positions: torch.Tensor, radius: float, box: np.ndarray | None) -> torch.Tensor:
    from vesin_torch import NeighborList

    n, dim = positions.shape
    x, side = _wrap_into_box(positions.detach().double(), radius, box)
    # vesin works in 3D: a 2D set lies in the z = 0 plane of a non-periodic third axis.
    points = torch.zeros(n, 3, dtype=torch.float64, device=positions.device)
    points[:, :dim] = x
    cell = torch.zeros(3, 3, dtype=torch.float64, device=positions.device)
    periodic = torch.zeros(3, dtype=torch.bool, device=positions.device)
    if side is not None:
        cell[:dim, :dim] = torch.diag(side)
        cell[dim:, dim:] = torch.eye(3 - dim, dtype=torch.float64, device=positions.device)
        periodic[:dim] = torch.as_tensor(box[2] > 0, device=positions.device)
    receiver, sender = NeighborList(cutoff=radius, full_list=True).compute(
        points, cell, periodic, "ij"
    )
    # vesin's order is unspecified on CUDA, and a box smaller than 2R lists a pair once per
    # periodic image: keep each ordered pair once (minimum image), sorted for determinism.
    key = torch.unique(receiver.long() * n + sender.long())
    return torch.stack([key % n, key // n])


@dataclass(frozen=True)
class Connectivity:
    """The model's graph (learning_to_simulate's `connectivity_utils`): the radius-R graph of the
    most recent positions in the dataset's (periodic) box, with each particle's self-edge unless
    `self_edges` is off, sorted by receiver so that summing messages reads memory in order.
    Picklable: DataLoader workers build each sample's graph beside the training step."""

    radius: float
    bounds: list | None = None
    periodic: list | None = None
    self_edges: bool = True

    def __call__(self, position: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        edge_index = radius_graph(position, self.radius, batch=batch, loop=self.self_edges,
                                  bounds=self.bounds, periodic=self.periodic)
        order = torch.argsort(edge_index[1] * len(position) + edge_index[0])
        return edge_index[:, order]
