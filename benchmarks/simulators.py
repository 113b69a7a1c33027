"""Particle-substeps per second of our MLS-MPM against Taichi's mpm88 / mpm3d examples; one JSON line.

Scenes are those of Taichi's examples: mpm88 (2D, 8192 fluid particles, 128^2 grid, E = 400,
rho = 1, dt = 2e-4) and mpm3d (3D, 8192 particles, 32^3 grid, dt = 4e-4). Taichi runs in its own
environment (`--taichi-python`, or $TAICHI_PYTHON; `bash benchmarks/peers/taichi.sh` builds it and prints
the path) through benchmarks/mpm88_taichi.py; its figures are null, with the reason, when it is absent.
Warp runs CPU kernels on one thread; Taichi uses every core.

    python -m benchmarks.simulators [--device cpu|cuda] [--seconds 3]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import warp as wp

from simulators.materials import make_material
from simulators.mpm import MPMSolver


def ours(dim: int, n_grid: int, dt: float, device: str, seconds: float) -> dict:
    """Our solver on Taichi's example scene: same particles, grid, stiffness, density and dt."""
    n = n_grid**dim // 2 ** (dim - 1)
    dx = 1.0 / n_grid
    rng = np.random.default_rng(0)
    low = 0.2 if dim == 2 else 0.15
    x = rng.random((n, dim)) * 0.4 + low
    v = np.zeros((n, dim))
    if dim == 2:
        v[:, 1] = -1.0
    # mpm88's fluid: tau = E (J - 1), ours K J (J - 1): the same to first order, with K = E = 400.
    water = make_material("water", {"density": 1.0, "bulk_modulus": 400.0})
    solver = MPMSolver(lower=np.full(dim, 3 * dx), upper=np.full(dim, 1 - 3 * dx), dx=dx, x=x, v=v,
                       material=np.zeros(n, int), materials=[water], volume=np.full(n, (0.5 * dx) ** dim),
                       gravity=np.r_[0.0, -9.8, [0.0] * (dim - 2)], walls=1, wall_friction=0.0, obstacles=[],
                       device=device)
    for _ in range(50):  # compile and warm up
        solver.substep(dt)
    wp.synchronize_device(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            solver.substep(dt)
        wp.synchronize_device(device)
        count += 50
    elapsed = time.perf_counter() - start
    if not np.isfinite(solver.positions()).all():
        raise RuntimeError(f"{dim}D benchmark scene went unstable")
    return {"particles": n, "grid": n_grid, "substeps": count, "particle_substeps_per_s": n * count / elapsed}


def taichi(example: str, python: str | None, device: str, seconds: float) -> dict:
    """Taichi's own example, timed in a subprocess; {'error': why} when that cannot run."""
    if not python or not Path(python).exists():
        return {"error": f"no taichi python (tried {python!r}): `bash benchmarks/peers/taichi.sh` builds one "
                         "and prints the path to pass as --taichi-python"}
    result = subprocess.run([python, str(Path(__file__).with_name("mpm88_taichi.py")), example, "--device", device,
                             "--seconds", str(seconds)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="warp device: cpu (default) or cuda")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per solver")
    parser.add_argument("--taichi-python", default=os.environ.get("TAICHI_PYTHON"))
    args = parser.parse_args()
    taichi_device = "cuda" if args.device.startswith("cuda") else "cpu"
    report = {"benchmark": "simulators", "device": args.device, "unit": "particle-substeps/s",
              "threads": {"warp": 1 if args.device == "cpu" else None, "taichi": os.cpu_count()}}
    for name, dim, n_grid, dt in (("mpm88", 2, 128, 2e-4), ("mpm3d", 3, 32, 4e-4)):
        mine = ours(dim, n_grid, dt, args.device, args.seconds)
        theirs = taichi(name, args.taichi_python, taichi_device, args.seconds)
        rate = theirs.get("particle_substeps_per_s")
        report[name] = {
            "particles": mine["particles"], "grid": f"{n_grid}^{dim}",
            "ours": round(mine["particle_substeps_per_s"]),
            "taichi": round(rate) if rate else None,
            "ratio": round(mine["particle_substeps_per_s"] / rate, 2) if rate else None,
            **({"taichi_error": theirs["error"]} if "error" in theirs else {"taichi_version": theirs["taichi"]}),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
