"""Particle-steps per second of our SPH solver against jax-sph on the same case, with their kinetic-energy
histories side by side; one JSON line.

The case is LagrangeBench's TGV-2D as jax-sph's cases/tgv.yaml sets it: the periodic unit square,
dx 0.02 (2500 particles), Re 100, c0 = 10 U, dt 4e-4, the transport-velocity formulation
(jax-sph: solver.tvf=1, its background pressure rho0 c0^2, which is our
background_pressure_factor 1), the kinetic energy every 100 steps. Our default factor, 5, is run
too: only its decay rate is reported, beside the analytic one. jax-sph runs in its own environment
(`--peer-python`, or $JAX_SPH_PYTHON; `bash benchmarks/peers/jax_sph.sh` builds it and prints the
path) through benchmarks/peers/jax_sph_run.py; its figures are null, with the reason, when it is
absent. Both run in float32 on the CPU unless told otherwise; Warp uses one thread, XLA every core.

    python -m benchmarks.sph [--time 1.0] [--device cpu|cuda] [--peer-python PY]
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

from simulators.scene import parse_scene
from simulators.sph_scene import build_sph_solver

STEPS_PER_FRAME = 100
TGV_DT = 4e-4  # s, LagrangeBench's TGV-2D step
TGV_RE = 100.0


def tgv_scene(frames: int, background_pressure_factor: float | None) -> dict:
    """The case as a scene; a factor of None leaves the scene's default."""
    factor = {} if background_pressure_factor is None else {"background_pressure_factor": background_pressure_factor}
    return {"solver": "sph", "dim": 2, "domain": [[0, 0], [1, 1]], "particle_spacing": 0.02, "frames": frames,
            "frame_dt": TGV_DT * STEPS_PER_FRAME, "substeps": STEPS_PER_FRAME, "periodic": [True, True],
            "gravity": [0, 0], "fluid": {"density": 1.0, "viscosity": 1.0 / TGV_RE, "reference_velocity": 1.0, **factor},
            "blocks": [{"box": [[0, 0], [1, 1]], "velocity": "taylor-green"}]}


def ours(frames: int, device: str, background_pressure_factor: float | None) -> dict:
    """Our solver on the case: kinetic energy every frame; the first frame (compilation, graph
    capture) is left out of the timing."""
    solver, _, dt, substeps = build_sph_solver(parse_scene(tgv_scene(frames, background_pressure_factor)),
                                            device=device)
    mass, fluid = solver.masses().astype(np.float64), solver.kind.numpy() == 0

    def kinetic_energy() -> float:
        u = solver.velocities().astype(np.float64)
        return float(0.5 * (mass * (u**2).sum(axis=1))[fluid].sum())

    energy, timed = [kinetic_energy()], 0.0
    for frame in range(1, frames):
        start = time.perf_counter()
        for _ in range(substeps):
            solver.step(dt)
        wp.synchronize_device(device)
        if frame > 1:
            timed += time.perf_counter() - start
        energy.append(kinetic_energy())
    steps = (frames - 2) * substeps
    return {"particles": len(mass), "steps": (frames - 1) * substeps, "dt": dt,
            "particle_steps_per_s": len(mass) * steps / timed, "kinetic_energy": energy}


def peer(python: str | None, cases: str | None, frames: int, dtype: str) -> dict:
    """jax-sph's run of the case; {'error': why} when it cannot run."""
    if not python or not Path(python).exists():
        return {"error": f"no jax-sph python (tried {python!r}): `bash benchmarks/peers/jax_sph.sh` builds one "
                         "and prints the path to pass as --peer-python"}
    cases = cases or str(Path(python).parents[2] / "src" / "cases")  # where jax_sph.sh puts them
    command = [python, str(Path(__file__).with_name("peers") / "jax_sph_run.py"), "--cases", cases,
               "--case", "tgv", "--steps", str((frames - 1) * STEPS_PER_FRAME), "--every", str(STEPS_PER_FRAME),
               "--set", "solver.tvf=1.0", "--set", f"solver.dt={TGV_DT}", "--set", f"dtype={dtype}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def decay_rate(energy: list[float], frame_dt: float) -> float:
    """The fitted kinetic-energy decay rate after the first 0.2 s (the start-up acoustics), over the
    analytic 16 pi^2 / Re."""
    t = np.arange(len(energy)) * frame_dt
    late = t >= 0.2
    return float(-np.polyfit(t[late], np.log(energy)[late], 1)[0] / (16 * np.pi**2 / TGV_RE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=float, default=1.0, help="simulated seconds (at least 0.4)")
    parser.add_argument("--device", default="cpu", help="warp device for ours: cpu (default) or cuda")
    parser.add_argument("--peer-python", default=os.environ.get("JAX_SPH_PYTHON"))
    parser.add_argument("--peer-cases", default=None, help="jax-sph's cases/ (default: beside its venv)")
    parser.add_argument("--peer-dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    frame_dt = TGV_DT * STEPS_PER_FRAME
    frames = round(args.time / frame_dt) + 1
    if frames < 11:
        parser.error("--time: at least 0.4 s, so that a decay rate can be fitted after the first 0.2 s")
    mine = ours(frames, args.device, background_pressure_factor=1.0)
    default = ours(frames, args.device, background_pressure_factor=None)
    theirs = peer(args.peer_python, args.peer_cases, frames, args.peer_dtype)
    row = {"particles": mine["particles"], "steps": mine["steps"], "ours": round(mine["particle_steps_per_s"]),
           "ours_decay_rate_vs_exact": round(decay_rate(mine["kinetic_energy"], frame_dt), 4),
           "ours_default_decay_rate_vs_exact": round(decay_rate(default["kinetic_energy"], frame_dt), 4)}
    if "error" in theirs:
        row |= {"jax_sph": None, "ratio": None, "jax_sph_error": theirs["error"]}
    else:
        e_ours, e_peer = np.array(mine["kinetic_energy"]), np.array(theirs["kinetic_energy"])
        n = min(len(e_ours), len(e_peer))
        row |= {"jax_sph": round(theirs["particle_steps_per_s"]),
                "ratio": round(mine["particle_steps_per_s"] / theirs["particle_steps_per_s"], 2),
                "jax_sph_decay_rate_vs_exact": round(decay_rate(theirs["kinetic_energy"], frame_dt), 4),
                # the largest gap between the two histories, relative to the initial energy
                "kinetic_energy_max_difference": round(float(np.abs(e_ours[:n] - e_peer[:n]).max() / e_peer[0]), 5),
                "kinetic_energy_final_ratio": round(float(e_ours[n - 1] / e_peer[n - 1]), 4),
                "jax_sph_dtype": theirs["dtype"]}
    print(json.dumps({"benchmark": "sph", "device": args.device, "unit": "particle-steps/s",
                      "threads": {"warp": 1 if args.device == "cpu" else None, "jax_sph": os.cpu_count()},
                      "simulated_s": (frames - 1) * frame_dt, "tgv-2d": row}))


if __name__ == "__main__":
    sys.exit(main())
