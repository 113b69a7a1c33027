"""Particle-steps per second of our SPH solver against jax-sph on the same cases, with their kinetic-energy
histories side by side; one JSON line.

The cases are LagrangeBench's, as jax-sph's cases/ set them, 100 steps between records:
- `tgv-2d`: the Taylor-Green vortex in the periodic unit square, dx 0.02 (2500 particles), Re 100,
  c0 = 10 U, dt 4e-4, the transport-velocity formulation (jax-sph `solver.tvf=1`, whose background
  pressure rho0 c0^2 is our background_pressure_factor 1). Our default factor, 5, is run too: only
  its decay rate is reported, beside the analytic 16 pi^2 / Re.
- `dam-2d`: the dam break of cases/db.yaml, a 2 x 1 column (5000 particles) in a 5.366 x 2 tank with
  3 wall layers, g = 1, continuity density, artificial viscosity 0.1, dt 3e-4 (our `dam-2d` recipe).

jax-sph runs in its own environment (`--peer-python`, or $JAX_SPH_PYTHON; `bash
benchmarks/peers/jax_sph.sh` builds it and prints the path) through benchmarks/peers/jax_sph_run.py;
its figures are null, with the reason, when it is absent. Both run in float32 on the CPU unless
told otherwise; Warp uses one thread, XLA every core.

    python -m benchmarks.sph [--tgv-time 1.0] [--dam-time 0.6] [--device cpu|cuda] [--peer-python PY]
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
from simulators.sph_recipes import DAM_COLUMN, SPH_RECIPES
from simulators.sph_scene import build_sph_solver

STEPS_PER_RECORD = 100
TGV_DT, DAM_DT = 4e-4, 3e-4  # s, LagrangeBench's steps
TGV_RE = 100.0


def tgv_scene(frames: int, background_pressure_factor: float | None) -> dict:
    """The TGV case as a scene; a factor of None leaves the scene's default."""
    factor = {} if background_pressure_factor is None else {"background_pressure_factor": background_pressure_factor}
    return {"solver": "sph", "dim": 2, "domain": [[0, 0], [1, 1]], "particle_spacing": 0.02, "frames": frames,
            "frame_dt": TGV_DT * STEPS_PER_RECORD, "substeps": STEPS_PER_RECORD, "periodic": [True, True],
            "gravity": [0, 0], "fluid": {"density": 1.0, "viscosity": 1.0 / TGV_RE, "reference_velocity": 1.0, **factor},
            "blocks": [{"box": [[0, 0], [1, 1]], "velocity": "taylor-green"}]}


def dam_scene(frames: int) -> dict:
    """The recipe's paper-size dam break with jax-sph's 2 x 1 column (the recipe varies it by +-10%),
    started on the lattice as the peer's run is (the recipe relaxes it first)."""
    scene = SPH_RECIPES["dam-2d"].scene(np.random.default_rng(0), size="paper", frames=frames)
    return {k: v for k, v in scene.items() if k != "relaxation"} | {"blocks": [{"box": [[0.0, 0.0], list(DAM_COLUMN)]}]}


def ours(scene: dict, device: str) -> dict:
    """Our solver on a scene: the fluid's kinetic energy every frame; the first frame (compilation,
    graph capture) is left out of the timing."""
    solver, _, dt, substeps = build_sph_solver(parse_scene(scene), device=device)
    mass, fluid = solver.masses().astype(np.float64), solver.fluid.kind.numpy() == 0

    def kinetic_energy() -> float:
        u = solver.velocities().astype(np.float64)
        return float(0.5 * (mass * (u**2).sum(axis=1))[fluid].sum())

    energy, timed = [kinetic_energy()], 0.0
    for frame in range(1, scene["frames"]):
        start = time.perf_counter()
        for _ in range(substeps):
            solver.step(dt)
        wp.synchronize_device(device)
        if frame > 1:
            timed += time.perf_counter() - start
        energy.append(kinetic_energy())
    steps = (scene["frames"] - 2) * substeps
    return {"particles": len(mass), "fluid": int(fluid.sum()), "steps": (scene["frames"] - 1) * substeps,
            "particle_steps_per_s": len(mass) * steps / timed, "kinetic_energy": energy}


def peer(python: str | None, cases: str | None, case: str, frames: int, overrides: list[str]) -> dict:
    """jax-sph's run of one of its cases; {'error': why} when it cannot run."""
    if not python or not Path(python).exists():
        return {"error": f"no jax-sph python (tried {python!r}): `bash benchmarks/peers/jax_sph.sh` builds one "
                         "and prints the path to pass as --peer-python"}
    cases = cases or str(Path(python).parents[2] / "src" / "cases")  # where jax_sph.sh puts them
    command = [python, str(Path(__file__).with_name("peers") / "jax_sph_run.py"), "--cases", cases, "--case", case,
               "--steps", str((frames - 1) * STEPS_PER_RECORD), "--every", str(STEPS_PER_RECORD)]
    for override in overrides:
        command += ["--set", override]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def decay_rate(energy: list[float], record_dt: float) -> float:
    """The fitted kinetic-energy decay rate after the first 0.2 s (the start-up acoustics), over the
    analytic 16 pi^2 / Re."""
    t = np.arange(len(energy)) * record_dt
    late = t >= 0.2
    return float(-np.polyfit(t[late], np.log(energy)[late], 1)[0] / (16 * np.pi**2 / TGV_RE))


def compare(mine: dict, theirs: dict) -> dict:
    """Speeds, their ratio, and the gap between the energy histories relative to the peer's largest energy."""
    row = {"particles": mine["particles"], "fluid": mine["fluid"], "steps": mine["steps"],
           "ours": round(mine["particle_steps_per_s"])}
    if "error" in theirs:
        return row | {"jax_sph": None, "ratio": None, "jax_sph_error": theirs["error"]}
    e_ours, e_peer = np.array(mine["kinetic_energy"]), np.array(theirs["kinetic_energy"])
    n = min(len(e_ours), len(e_peer))
    return row | {"jax_sph_particles": theirs["particles"], "jax_sph": round(theirs["particle_steps_per_s"]),
                  "ratio": round(mine["particle_steps_per_s"] / theirs["particle_steps_per_s"], 2),
                  "kinetic_energy_max_difference": round(float(np.abs(e_ours[:n] - e_peer[:n]).max() / e_peer.max()), 5),
                  "kinetic_energy_final_ratio": round(float(e_ours[n - 1] / e_peer[n - 1]), 4),
                  "jax_sph_dtype": theirs["dtype"]}


def records(seconds: float, dt: float) -> int:
    return round(seconds / (dt * STEPS_PER_RECORD)) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tgv-time", type=float, default=1.0, help="TGV simulated seconds (at least 0.4; 0 skips)")
    parser.add_argument("--dam-time", type=float, default=0.6, help="dam-break simulated time (0 skips)")
    parser.add_argument("--device", default="cpu", help="warp device for ours: cpu (default) or cuda")
    parser.add_argument("--peer-python", default=os.environ.get("JAX_SPH_PYTHON"))
    parser.add_argument("--peer-cases", default=None, help="jax-sph's cases/ (default: beside its venv)")
    parser.add_argument("--peer-dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    if 0 < args.tgv_time < 0.4:
        parser.error("--tgv-time: at least 0.4 s, so that a decay rate can be fitted after the first 0.2 s")
    report = {"benchmark": "sph", "device": args.device, "unit": "particle-steps/s",
              "threads": {"warp": 1 if args.device == "cpu" else None, "jax_sph": os.cpu_count()}}
    dtype = f"dtype={args.peer_dtype}"
    if args.tgv_time > 0:
        frames = records(args.tgv_time, TGV_DT)
        mine = ours(tgv_scene(frames, 1.0), args.device)
        theirs = peer(args.peer_python, args.peer_cases, "tgv", frames, ["solver.tvf=1.0", f"solver.dt={TGV_DT}", dtype])
        default = ours(tgv_scene(frames, None), args.device)
        report["tgv-2d"] = compare(mine, theirs) | {
            "simulated_s": (frames - 1) * TGV_DT * STEPS_PER_RECORD,
            "ours_decay_rate_vs_exact": round(decay_rate(mine["kinetic_energy"], TGV_DT * STEPS_PER_RECORD), 4),
            "ours_default_decay_rate_vs_exact": round(decay_rate(default["kinetic_energy"], TGV_DT * STEPS_PER_RECORD), 4),
            **({} if "error" in theirs else {
                "jax_sph_decay_rate_vs_exact": round(decay_rate(theirs["kinetic_energy"], TGV_DT * STEPS_PER_RECORD), 4)})}
    if args.dam_time > 0:
        frames = records(args.dam_time, DAM_DT)
        mine = ours(dam_scene(frames), args.device)
        theirs = peer(args.peer_python, args.peer_cases, "db", frames, [dtype])
        report["dam-2d"] = compare(mine, theirs) | {"simulated_s": (frames - 1) * DAM_DT * STEPS_PER_RECORD}
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
