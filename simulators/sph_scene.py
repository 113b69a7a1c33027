"""SPH scenes (`"solver": "sph"`): parse the keys of docs/scenes.md's SPH section and run them.

Fluid fills boxes on a lattice of `particle_spacing`; every non-periodic face of the domain gets
`wall_layers` layers of wall particles on the same lattice, outside the domain. Output frames hold
the fluid (GNS type 5) and then the walls (type 3), which never move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm.auto import tqdm

from gnsim.domain import KINEMATIC_PARTICLE
from simulators.materials import PARTICLE_TYPE
from simulators.scene_checks import (
    SceneError,
    SimulationError,
    check_lattice,
    check_trajectory,
    number,
    points,
    positive,
    vector,
)
from simulators.sph import FLUID, SUPPORT, WALL, SPHSolver, time_step

FLUID_TYPE, WALL_TYPE = PARTICLE_TYPE["water"], KINEMATIC_PARTICLE  # GNS particle type ids
SOUND_SPEED_FACTOR = 10.0  # c0 = 10 U_ref: Mach 0.1, density varies ~1% (Monaghan 1994)
FACES = {f"{axis}{side}": (d, side) for d, axis in enumerate("xyz") for side in "-+"}
KEYS = {"solver", "dim", "domain", "particle_spacing", "frames", "frame_dt", "blocks", "periodic", "gravity",
        "fluid", "wall_layers", "wall_velocity", "transport_velocity", "substeps", "density_evolution",
        "gravity_reversal", "relaxation"}
FLUID_KEYS = {"density", "viscosity", "reference_velocity", "sound_speed", "eos_gamma", "background_pressure_factor",
              "artificial_viscosity"}
DENSITY_EVOLUTIONS = ("summation", "continuity")
RELAXATION_KEYS = {"steps", "noise", "seed"}


@dataclass
class SPHScene:
    dim: int
    lower: np.ndarray
    upper: np.ndarray
    particle_spacing: float
    frames: int
    frame_dt: float
    periodic: list[bool]
    gravity: np.ndarray
    density: float
    viscosity: float  # dynamic, Pa s
    reference_velocity: float
    sound_speed: float
    eos_gamma: float
    background_pressure_factor: float
    blocks: list[dict]  # lower, upper, velocity (list or "taylor-green"), vortex_offset
    wall_layers: int = 3
    wall_velocity: dict[str, np.ndarray] = field(default_factory=dict)
    transport_velocity: bool = True
    substeps: int | None = None
    density_evolution: str = "summation"
    artificial_viscosity: float = 0.0  # Monaghan's alpha
    gravity_reversal: tuple[int, float] | None = None  # (axis, at): -gravity where x[axis] > at
    relaxation: dict | None = None  # steps, noise (in particle spacings), seed: see relaxed_fluid
    source: dict = field(default_factory=dict)


def parse_sph_scene(data: dict) -> SPHScene:
    """Check and complete an SPH scene given as a dict; errors name the key."""
    if data.get("solver") != "sph":
        raise SceneError(f"scene.solver: must be 'mpm' or 'sph', got {data.get('solver')!r}")
    for key in sorted(set(data) - KEYS):
        raise SceneError(f"scene.{key}: not an SPH scene key (known: {', '.join(sorted(KEYS))})")
    for key in ("dim", "domain", "particle_spacing", "frames", "frame_dt", "blocks", "fluid"):
        if key not in data:
            raise SceneError(f"scene.{key}: missing")
    dim = data["dim"]
    if dim not in (2, 3) or isinstance(dim, bool):
        raise SceneError(f"scene.dim: must be 2 or 3, got {dim!r}")
    lower, upper = points(data["domain"], 2, dim, "scene.domain")
    if np.any(upper <= lower):
        raise SceneError("scene.domain: the upper corner must exceed the lower one on every axis")
    frames = data["frames"]
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 2:
        raise SceneError(f"scene.frames: must be an integer >= 2, got {frames!r}")
    periodic = data.get("periodic", [False] * dim)
    if not isinstance(periodic, list) or len(periodic) != dim or not all(isinstance(p, bool) for p in periodic):
        raise SceneError(f"scene.periodic: expected {dim} booleans, got {periodic!r}")
    spacing = positive(data["particle_spacing"], "scene.particle_spacing")
    for d in range(dim):
        cells = (upper[d] - lower[d]) / spacing
        if periodic[d] and (abs(cells - round(cells)) > 1e-6 or cells < 3 * SUPPORT - 1e-6):
            raise SceneError(f"scene.domain: periodic axis {d} must be a whole number of particle spacings "
                             f"long, at least {3 * SUPPORT:g} (three kernel supports), got {cells:.6g}")
    fluid = data["fluid"]
    if not isinstance(fluid, dict):
        raise SceneError("scene.fluid: expected an object")
    for key in sorted(set(fluid) - FLUID_KEYS):
        raise SceneError(f"scene.fluid.{key}: unknown (known: {', '.join(sorted(FLUID_KEYS))})")
    reference = positive(fluid.get("reference_velocity", 1.0), "scene.fluid.reference_velocity")
    wall_layers = data.get("wall_layers", math.ceil(SUPPORT))
    if not isinstance(wall_layers, int) or isinstance(wall_layers, bool) or wall_layers < 1:
        raise SceneError(f"scene.wall_layers: must be a positive integer, got {wall_layers!r}")
    moving = data.get("wall_velocity", {})
    if not isinstance(moving, dict):
        raise SceneError("scene.wall_velocity: expected an object of faces (x-, x+, y-, ...)")
    wall_velocity = {}
    for face, velocity in moving.items():
        if face not in FACES or FACES[face][0] >= dim:
            raise SceneError(f"scene.wall_velocity.{face}: not a face (known: {', '.join(f for f in FACES if FACES[f][0] < dim)})")
        if periodic[FACES[face][0]]:
            raise SceneError(f"scene.wall_velocity.{face}: that axis is periodic and has no wall")
        wall_velocity[face] = vector(velocity, dim, f"scene.wall_velocity.{face}")
    transport = data.get("transport_velocity", True)
    if not isinstance(transport, bool):
        raise SceneError(f"scene.transport_velocity: must be true or false, got {transport!r}")
    substeps = data.get("substeps")
    if substeps is not None and (not isinstance(substeps, int) or isinstance(substeps, bool) or substeps < 1):
        raise SceneError(f"scene.substeps: must be a positive integer, got {substeps!r}")
    evolution = data.get("density_evolution", "summation")
    if evolution not in DENSITY_EVOLUTIONS:
        raise SceneError(f"scene.density_evolution: must be one of {', '.join(DENSITY_EVOLUTIONS)}, got {evolution!r}")
    reversal = _gravity_reversal(data["gravity_reversal"], dim, lower, upper) if "gravity_reversal" in data else None
    if not isinstance(data["blocks"], list) or not data["blocks"]:
        raise SceneError("scene.blocks: expected a non-empty list of boxes")
    blocks = [_block(b, dim, f"scene.blocks[{i}]") for i, b in enumerate(data["blocks"])]
    relaxation = _relaxation(data["relaxation"], blocks) if "relaxation" in data else None
    return SPHScene(
        dim=dim, lower=lower, upper=upper, particle_spacing=spacing, frames=frames,
        frame_dt=positive(data["frame_dt"], "scene.frame_dt"), periodic=periodic,
        gravity=vector(data.get("gravity", [0.0, -9.81] + [0.0] * (dim - 2)), dim, "scene.gravity"),
        density=positive(fluid.get("density", 1000.0), "scene.fluid.density"),
        viscosity=number(fluid.get("viscosity", 1e-3), "scene.fluid.viscosity", minimum=0.0),
        reference_velocity=reference,
        sound_speed=positive(fluid.get("sound_speed", SOUND_SPEED_FACTOR * reference), "scene.fluid.sound_speed"),
        eos_gamma=positive(fluid.get("eos_gamma", 1.0), "scene.fluid.eos_gamma"),
        background_pressure_factor=number(fluid.get("background_pressure_factor", 5.0),
                                           "scene.fluid.background_pressure_factor", minimum=0.0),
        blocks=blocks,
        wall_layers=wall_layers, wall_velocity=wall_velocity, transport_velocity=transport, substeps=substeps,
        density_evolution=evolution,
        artificial_viscosity=number(fluid.get("artificial_viscosity", 0.0), "scene.fluid.artificial_viscosity",
                                     minimum=0.0),
        gravity_reversal=reversal, relaxation=relaxation, source=data)


def _relaxation(data, blocks: list[dict]) -> dict:
    # {"steps": 5000, "noise": 0.25, "seed": 7}: jax-sph's relaxed start (see relaxed_fluid).
    where = "scene.relaxation"
    if not isinstance(data, dict):
        raise SceneError(f"{where}: expected {{\"steps\": N, \"noise\": spacings, \"seed\": integer}}")
    for i, a in enumerate(blocks):  # each block relaxes in a box of its own, so none may share space
        for j, b in enumerate(blocks[:i]):
            if np.all(np.minimum(a["upper"], b["upper"]) > np.maximum(a["lower"], b["lower"])):
                raise SceneError(f"{where}: relaxes each block in a box of its own, but blocks {j} and {i} overlap")
    for key in sorted(set(data) - RELAXATION_KEYS):
        raise SceneError(f"{where}.{key}: unknown (known: {', '.join(sorted(RELAXATION_KEYS))})")
    steps, seed = data.get("steps"), data.get("seed", 0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise SceneError(f"{where}.steps: must be a positive integer, got {steps!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SceneError(f"{where}.seed: must be a non-negative integer, got {seed!r}")
    return {"steps": steps, "noise": number(data.get("noise", 0.25), f"{where}.noise", minimum=0.0), "seed": seed}


def _gravity_reversal(data, dim: int, lower: np.ndarray, upper: np.ndarray) -> tuple[int, float]:
    # {"axis": "y", "at": 1.0}: particles with y > 1 feel -gravity (those at y <= 1, +gravity).
    where = "scene.gravity_reversal"
    axes = "xyz"[:dim]
    if not isinstance(data, dict):
        raise SceneError(f"{where}: expected {{\"axis\": one of {', '.join(axes)}, \"at\": a coordinate}}")
    for key in sorted(set(data) - {"axis", "at"}):
        raise SceneError(f"{where}.{key}: unknown (known: axis, at)")
    for key in ("axis", "at"):
        if key not in data:
            raise SceneError(f"{where}.{key}: missing")
    if not isinstance(data["axis"], str) or data["axis"] not in axes:
        raise SceneError(f"{where}.axis: must be one of {', '.join(axes)}, got {data['axis']!r}")
    axis = axes.index(data["axis"])
    at = number(data["at"], f"{where}.at")
    if not lower[axis] < at < upper[axis]:
        raise SceneError(f"{where}.at: must lie inside the domain along {data['axis']}, "
                         f"({lower[axis]:g}, {upper[axis]:g}), got {at:g}")
    return axis, at


def _block(data: dict, dim: int, where: str) -> dict:
    if not isinstance(data, dict) or "box" not in data:
        raise SceneError(f"{where}: expected {{\"box\": [[lower], [upper]], \"velocity\": ...}}")
    for key in sorted(set(data) - {"box", "velocity", "vortex_offset"}):
        raise SceneError(f"{where}.{key}: unknown (known: box, velocity, vortex_offset)")
    lower, upper = points(data["box"], 2, dim, f"{where}.box")
    if np.any(upper <= lower):
        raise SceneError(f"{where}.box: the upper corner must exceed the lower one on every axis")
    velocity = data.get("velocity", [0.0] * dim)
    if velocity != "taylor-green":
        velocity = vector(velocity, dim, f"{where}.velocity")
    offset = vector(data.get("vortex_offset", [0.0] * dim), dim, f"{where}.vortex_offset")
    return {"lower": lower, "upper": upper, "velocity": velocity, "vortex_offset": offset}


def taylor_green(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, speed: float) -> np.ndarray:
    """The Taylor-Green vortex of LagrangeBench (Adami 2013), one period over the domain:
    2D u = -U cos(kx) sin(ky), v = U sin(kx) cos(ky); 3D u = U sin cos cos, v = -U cos sin cos, w = 0."""
    phase = 2 * np.pi * (x - lower) / (upper - lower)
    s, c = np.sin(phase), np.cos(phase)
    if x.shape[1] == 2:
        return speed * np.stack([-c[:, 0] * s[:, 1], s[:, 0] * c[:, 1]], axis=1)
    return speed * np.stack([s[:, 0] * c[:, 1] * c[:, 2], -c[:, 0] * s[:, 1] * c[:, 2], 0 * s[:, 0]], axis=1)


def particles(scene: SPHScene, device: str = "cpu", progress: bool | None = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fluid then wall particles on one lattice: positions, velocities, kinds, wall velocities.
    With `relaxation`, each block's fluid starts from its relaxed positions instead (relaxed_fluid)."""
    s, n = scene.particle_spacing, scene.wall_layers
    pad = np.where(scene.periodic, 0, n)
    counts = [math.floor((hi - lo) / s + 1e-6) + 2 * p for lo, hi, p in zip(scene.lower, scene.upper, pad)]
    check_lattice(counts, scene.dim)
    axes = [lo + s * (0.5 + np.arange(-p, count - p)) for lo, p, count in zip(scene.lower, pad, counts)]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, scene.dim)
    outside = (lattice < scene.lower) | (lattice > scene.upper)
    wall = outside.any(axis=1)
    owner = np.full(len(lattice), -1)
    for index, block in enumerate(scene.blocks):
        inside = np.all((lattice >= block["lower"]) & (lattice <= block["upper"]), axis=1)
        owner[(owner < 0) & inside & ~wall] = index
    if not (owner >= 0).any():
        raise SceneError("scene.blocks: the boxes hold no particle; make them larger than particle_spacing")
    check_trajectory(scene.frames, int((owner >= 0).sum() + wall.sum()), scene.dim)  # relaxing keeps the count
    if scene.relaxation:
        blocks = [relaxed_fluid(scene, block, device, progress) for block in scene.blocks]
        x_f, owner_f = np.concatenate(blocks), np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
    else:
        x_f, owner_f = lattice[owner >= 0], owner[owner >= 0]
    x_w = lattice[wall]
    u_f = np.zeros_like(x_f)
    for index, block in enumerate(scene.blocks):
        mine = owner_f == index
        u_f[mine] = taylor_green(x_f[mine] - block["vortex_offset"], scene.lower, scene.upper,
                                 scene.reference_velocity) \
            if isinstance(block["velocity"], str) else block["velocity"]
    # A wall particle beyond several faces moves with the face of the highest axis: a lid covers its corners.
    u_w = np.zeros_like(x_w)
    for face, velocity in sorted(scene.wall_velocity.items(), key=lambda item: FACES[item[0]][0]):
        d, side = FACES[face]
        beyond = x_w[:, d] > scene.upper[d] if side == "+" else x_w[:, d] < scene.lower[d]
        u_w[beyond] = velocity
    x = np.concatenate([x_f, x_w])
    kind = np.r_[np.full(len(x_f), FLUID), np.full(len(x_w), WALL)]
    return x, np.concatenate([u_f, np.zeros_like(x_w)]), kind, np.concatenate([np.zeros_like(x_f), u_w])


def relaxed_fluid(scene: SPHScene, block: dict, device: str = "cpu", progress: bool | None = False) -> np.ndarray:
    """A block's fluid positions after jax-sph's relaxation (LagrangeBench's datasets start so):
    the block's lattice, moved by Gaussian noise of `noise` particle spacings, run for `steps`
    steps at rest in a box of its own (walls on every face, periodic where the scene's axis is
    and the block spans it), without body force, with the transport velocity on. The background
    pressure spreads the particles evenly but not on a lattice, so the flow that starts from them
    carries no lattice's preferred directions; the block's velocity is then set at these positions."""
    lower, upper = np.maximum(block["lower"], scene.lower), np.minimum(block["upper"], scene.upper)
    spans = [bool(p) for p in scene.periodic & (lower <= scene.lower) & (upper >= scene.upper)]
    box = replace(scene, lower=lower, upper=upper, periodic=spans, gravity=0 * scene.gravity,
                  blocks=[block | {"velocity": np.zeros(scene.dim)}], wall_velocity={}, transport_velocity=True,
                  gravity_reversal=None, relaxation=None)
    x, u, kind, wall_velocity = particles(box)
    fluid = kind == FLUID
    rng = np.random.default_rng(scene.relaxation["seed"])
    x[fluid] += rng.normal(0.0, scene.relaxation["noise"] * scene.particle_spacing, (fluid.sum(), scene.dim))
    length = box.upper - box.lower
    wrapped = box.lower + np.mod(x[fluid] - box.lower, length)
    x[fluid] = np.where(spans, wrapped, np.clip(x[fluid], box.lower, box.upper))
    solver = _solver(box, x, u, kind, wall_velocity, device)
    dt, _ = _time_step(scene)
    for _ in tqdm(range(scene.relaxation["steps"]), desc="relaxation", leave=False, disable=None if progress else True):
        solver.step(dt)
    return solver.positions()[fluid].astype(np.float64)


def _solver(scene: SPHScene, x, u, kind, wall_velocity, device: str) -> SPHSolver:
    return SPHSolver(x=x, u=u, kind=kind, wall_velocity=wall_velocity, lower=scene.lower, upper=scene.upper,
                     periodic=scene.periodic, dx=scene.particle_spacing, density=scene.density,
                     sound_speed=scene.sound_speed, viscosity=scene.viscosity, gravity=scene.gravity,
                     gamma=scene.eos_gamma, background_pressure_factor=scene.background_pressure_factor,
                     transport_velocity=scene.transport_velocity, density_evolution=scene.density_evolution,
                     artificial_viscosity=scene.artificial_viscosity, gravity_reversal=scene.gravity_reversal,
                     device=device)


def _time_step(scene: SPHScene) -> tuple[float, int]:
    """The step dt and steps per frame: `substeps`, or the fewest the stability limits allow."""
    limit = time_step(scene.particle_spacing, scene.sound_speed, scene.reference_velocity,
                      scene.viscosity / scene.density, float(np.linalg.norm(scene.gravity)))
    substeps = scene.substeps or math.ceil(scene.frame_dt / limit * (1 - 1e-9))
    if scene.frame_dt / substeps > limit * (1 + 1e-6):
        raise SceneError(f"scene.substeps: {substeps} steps per frame make dt = {scene.frame_dt / substeps:.3g} s, "
                         f"above the stable {limit:.3g} s (CFL, viscous and body-force limits)")
    return scene.frame_dt / substeps, substeps


def build_sph_solver(scene: SPHScene, device: str = "cpu", progress: bool | None = False) -> tuple[SPHSolver, np.ndarray, float, int]:
    """The solver, GNS particle types, step dt and steps per frame of an SPH scene."""
    dt, substeps = _time_step(scene)
    x, u, kind, wall_velocity = particles(scene, device, progress)
    solver = _solver(scene, x, u, kind, wall_velocity, device)
    particle_type = np.where(kind == FLUID, FLUID_TYPE, WALL_TYPE).astype(np.int64)
    return solver, particle_type, dt, substeps


def simulate_sph(scene: SPHScene, device: str = "cpu", progress: bool | None = False,
                 description: str = "frames") -> tuple[np.ndarray, np.ndarray]:
    """Positions [frames, N, dim] float32 (fluid, then walls) and GNS particle types [N]."""
    solver, particle_type, dt, substeps = build_sph_solver(scene, device, progress)
    positions = np.empty((scene.frames, len(particle_type), scene.dim), np.float32)
    positions[0] = solver.positions()
    for frame in tqdm(range(1, scene.frames), desc=description, leave=False, disable=None if progress else True):
        for _ in range(substeps):
            solver.step(dt)
        positions[frame] = solver.positions()
        if not np.isfinite(positions[frame]).all():
            raise SimulationError(f"frame {frame}: particle positions became NaN (likely cause: a time step "
                                  "too long; raise 'substeps' or 'fluid.reference_velocity')")
    return positions, particle_type


def dataset_info(scene: SPHScene) -> tuple[list[list[float]], dict]:
    """Bounds (the walls included) and the metadata of an SPH scene's dataset."""
    pad = np.where(scene.periodic, 0.0, scene.wall_layers * scene.particle_spacing)
    bounds = np.stack([scene.lower - pad, scene.upper + pad], axis=1).tolist()
    return bounds, {"simulator": "wcsph-tvf (warp)", "scene": scene.source, "gravity": scene.gravity.tolist(),
                    "particle_spacing": scene.particle_spacing, "periodic_boundary_conditions": scene.periodic,
                    "sound_speed": scene.sound_speed, "viscosity": scene.viscosity, "density": scene.density}
