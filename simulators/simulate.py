"""Run a scene: sample particles, choose the substep, advance frame by frame, check stability."""

from __future__ import annotations

import math

import numpy as np
import warp as wp
from tqdm.auto import tqdm

from gnsim.dataset import KINEMATIC_PARTICLE
from simulators.colliders import WALL_TYPES, boundary_particles
from simulators.materials import PARTICLE_TYPE
from simulators.mpm import MPMSolver, free_fall_speed, time_step
from simulators.scene import Scene, check_grid, parse_scene, sample_blocks, to_warp_obstacle
from simulators.scene_checks import SceneError, SimulationError
from simulators.sph_scene import SPHScene, simulate_sph
from simulators.sph_scene import dataset_info as sph_dataset_info

MAX_SUBSTEPS_PER_FRAME = 1e5  # ~100x a 1 cm water frame's; past it a small trajectory takes days
MAX_CELLS_PER_SUBSTEP = 0.5  # beyond this a particle outruns its B-spline stencil (CFL violation)


def default_device() -> str:
    """CUDA when Warp sees a GPU, else CPU."""
    return "cuda" if wp.is_cuda_available() else "cpu"


def resolve_device(device: str | None) -> str:
    """The Warp device to run on (default: CUDA when available); ValueError if it does not exist."""
    if device is None:
        return default_device()
    try:
        return str(wp.get_device(device))
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"--device {device!r}: {str(error).splitlines()[0]}") from None


def build_solver(scene: Scene, device: str = "cpu", gather: bool | None = None) -> tuple[MPMSolver, np.ndarray, float, int]:
    """The solver for a scene, the particles' GNS type ids, the substep dt and substeps per frame;
    `gather` picks the solver's P2G (default: gather on CUDA, scatter on CPU)."""
    x, v, block = sample_blocks(scene)
    if len(x) == 0:
        raise SimulationError("the blocks hold no particle: make them larger than particle_spacing")
    check_grid(scene)
    names = [b.material.name for b in scene.blocks]
    materials = [b.material for b in scene.blocks]  # one material slot per block
    volume = np.full(len(x), scene.particle_spacing**scene.dim)
    obstacles = [to_warp_obstacle(o, scene.dim, scene.lower, scene.upper) for o in scene.obstacles]
    solver = MPMSolver(
        lower=scene.lower, upper=scene.upper, dx=scene.grid_spacing, x=x, v=v, material=block,
        materials=materials, volume=volume, gravity=scene.gravity, walls=WALL_TYPES[scene.walls],
        wall_friction=scene.wall_friction, obstacles=obstacles, device=device, gather=gather)
    # CFL on the fastest wave plus the fastest the flow can get: a fall across the whole domain
    # on top of the fastest initial velocity.
    speed = free_fall_speed(float(np.max(scene.upper - scene.lower)), float(np.linalg.norm(scene.gravity)))
    speed += float(np.max(np.linalg.norm(v, axis=1)))
    dt = time_step(scene.grid_spacing, materials, speed, scene.cfl)
    substeps = scene.substeps or (scene.frame_dt / dt if dt > 0 else math.inf)
    if not substeps <= MAX_SUBSTEPS_PER_FRAME:  # also NaN: a run that would never end, refused up front
        raise SceneError(f"scene: {substeps:.3g} substeps per frame (cfl {scene.cfl}, fastest speed {speed:.3g} m/s, "
                         f"grid_spacing {scene.grid_spacing}), more than {MAX_SUBSTEPS_PER_FRAME:g}: lower the "
                         "velocities or substeps, or raise cfl or grid_spacing")
    substeps = max(1, math.ceil(substeps))
    particle_type = np.array([PARTICLE_TYPE[names[b]] for b in block], np.int64)
    return solver, particle_type, scene.frame_dt / substeps, substeps


def dataset_info(scene: Scene | SPHScene) -> tuple[list[list[float]], dict]:
    """Bounds and metadata of a scene's dataset, from its solver's own description."""
    if isinstance(scene, SPHScene):
        return sph_dataset_info(scene)
    bounds = np.stack([scene.lower, scene.upper], axis=1).tolist()
    return bounds, {"simulator": "mls-mpm (warp)", "scene": scene.source, "gravity": scene.gravity.tolist(),
                    "particle_spacing": scene.particle_spacing, "grid_spacing": scene.grid_spacing}


def simulate(scene: Scene | SPHScene | dict, device: str | None = None, progress: bool | None = False,
             description: str = "frames") -> tuple[np.ndarray, np.ndarray]:
    """Simulate a scene: positions [T, N, D] float32 (metres, T = frames, frame 0 the initial state)
    and particle types [N] (GNS ids; boundary particles, type 3, come last and stay put)."""
    if isinstance(scene, dict):
        scene = parse_scene(scene)
    device = resolve_device(device)
    if isinstance(scene, SPHScene):
        return simulate_sph(scene, device, progress, description)
    solver, particle_type, dt, substeps = build_solver(scene, device)
    n = len(particle_type)
    boundary = boundary_points(scene, device)
    positions = np.empty((scene.frames, n + len(boundary), scene.dim), np.float32)
    positions[:, n:] = boundary
    positions[0, :n] = solver.positions()
    for frame in tqdm(range(1, scene.frames), desc=description, leave=False, disable=None if progress else True):
        for _ in range(substeps):
            solver.substep(dt)
        positions[frame, :n] = solver.positions()
        check_stability(solver, positions[frame, :n], frame, dt)
    particle_type = np.concatenate([particle_type, np.full(len(boundary), KINEMATIC_PARTICLE, np.int64)])
    return positions, particle_type


def boundary_points(scene: Scene, device: str = "cpu") -> np.ndarray:
    """Boundary particles [M, dim] for the scene's `boundary_particles` setting."""
    which = scene.boundary_particles
    obstacles = [to_warp_obstacle(o, scene.dim, scene.lower, scene.upper) for o in scene.obstacles] \
        if which in ("all", "obstacles") else []
    return boundary_particles(obstacles, scene.lower, scene.upper, scene.particle_spacing,
                              walls=which in ("all", "walls"), device=device)


def check_stability(solver: MPMSolver, x: np.ndarray, frame: int, dt: float) -> None:
    """Raise SimulationError on NaN, on particles outrunning the grid, or on collapsed volumes."""
    if not np.isfinite(x).all():
        raise SimulationError(f"frame {frame}: particle positions became NaN "
                              "(likely cause: a material too stiff for the substep; lower 'cfl' or raise 'substeps')")
    speed = float(np.max(np.linalg.norm(solver.velocities(), axis=1)))
    if speed * dt > MAX_CELLS_PER_SUBSTEP * solver.dx:
        raise SimulationError(f"frame {frame}: CFL violated, a particle moves {speed * dt / solver.dx:.2f} cells per "
                              f"substep at {speed:.3g} m/s (likely cause: a substep too long for this speed; lower "
                              "'cfl', raise 'substeps' or slow the initial velocities)")
    J = solver.volume_ratios()
    if J.min() < 0.05 or J.max() > 20:
        raise SimulationError(f"frame {frame}: particle volumes left [0.05, 20] x their initial volume "
                              f"(J in [{J.min():.3g}, {J.max():.3g}]; likely cause: a material too soft or too "
                              "stiff for the grid spacing)")
