"""Neighbour-list throughput: gnsim.radius_graph against scipy's cKDTree, in one run.

Prints one JSON line: edges/s for 2D (10k particles, ~20 neighbours) and 3D (100k particles,
~30 neighbours), uniform random sets at the GNS densities, best of `--repeats`, and the ratio.
"""

import argparse
import json
import math
import platform
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from gnsim import radius_graph


def best_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def kdtree_edges(points: np.ndarray, radius: float) -> np.ndarray:
    """The plain cKDTree recipe: build, query pairs, add both directions."""
    pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")
    return np.concatenate([pairs, pairs[:, ::-1]]).T


def measure(particles: int, dim: int, neighbours: int, repeats: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    positions = torch.rand(particles, dim, generator=generator)
    ball = math.pi if dim == 2 else 4 / 3 * math.pi
    radius = (neighbours / (particles * ball)) ** (1 / dim)  # unit box: mean degree = neighbours
    on_device = positions.to(device)
    edges = radius_graph(on_device, radius).shape[1]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    ours = best_seconds(lambda: (radius_graph(on_device, radius), sync()), repeats)
    points = positions.double().numpy()
    reference = best_seconds(lambda: kdtree_edges(points, radius), repeats)
    return {
        "particles": particles, "dim": dim, "mean_neighbours": round(edges / particles, 1),
        "edges": edges, "gnsim_edges_per_s": edges / ours, "ckdtree_edges_per_s": edges / reference,
        "ratio_vs_ckdtree": reference / ours,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    cases = {"2d_10k": (10_000, 2, 20), "3d_100k": (100_000, 3, 30)}
    figures = {name: measure(*case, args.repeats, args.device) for name, case in cases.items()}
    print(json.dumps({"benchmark": "neighbors", "device": args.device, "threads": torch.get_num_threads(),
                      "machine": platform.machine(), **figures}))


if __name__ == "__main__":
    main()
