"""Scenes: the domain, the grid, the frames, blocks of material and obstacles, from JSON or YAML.

The keys of docs/scenes.md are a stable contract. Every error names the key it is about, e.g.
`scene.blocks[1].box: expected 2 points of 2 numbers`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import warp as wp

from gnsim.plain_yaml import load_yaml
from simulators.colliders import SHAPES, UNBOUNDED, WALL_TYPES, Obstacle
from simulators.materials import MaterialParams, make_material
from simulators.mpm import GRID_NODE_BYTES, grid_resolution
from simulators.scene_checks import (
    SceneError,
    check_lattice,
    check_memory,
    check_trajectory,
    known_keys,
    number,
    points,
    positive,
    vector,
)
from simulators.sph_scene import parse_sph_scene

BOUNDARY_PARTICLES = ("all", "obstacles", "walls", "none")
SEEDINGS = ("lattice", "random")
SCENE_KEYS = ("dim", "domain", "particle_spacing", "grid_spacing", "frames", "frame_dt", "walls",
              "wall_friction", "gravity", "blocks", "obstacles", "boundary_particles", "cfl",
              "substeps", "seeding", "seed")
BLOCK_KEYS = ("material", "params", "velocity", "box", "sphere", "polygon")
OBSTACLE_KEYS = ("walls", "friction", "thickness", *SHAPES)
ROUND_KEYS = ("center", "radius")  # of a sphere or cylinder
DEFAULT_WALL_FRICTION = 0.5


@dataclass
class Block:
    material: MaterialParams
    shape: str  # "box", "sphere" or "polygon"
    geometry: dict  # box: lower, upper; sphere: center, radius; polygon: vertices
    velocity: np.ndarray


@dataclass
class Scene:
    dim: int
    lower: np.ndarray
    upper: np.ndarray
    particle_spacing: float
    grid_spacing: float
    frames: int
    frame_dt: float
    walls: str
    wall_friction: float
    gravity: np.ndarray
    blocks: list[Block]
    obstacles: list[dict] = field(default_factory=list)  # parsed: shape, geometry, walls, friction
    boundary_particles: str = "all"
    cfl: float = 0.4
    substeps: int | None = None  # fixed substeps per frame; None: from the CFL condition
    seeding: str = "lattice"  # or "random": as many particles per block, uniformly at random
    seed: int = 0  # of the random seeding
    source: dict = field(default_factory=dict)  # the scene as given, for the metadata


def load_scene(path: str | Path) -> Scene:
    """Read a scene from a .json or .yaml file."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: file not found")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = load_yaml(text, "scenes")
        else:
            data = json.loads(text)
    except Exception as error:  # noqa: BLE001 - any parse failure is the file's fault
        raise SceneError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'} ({str(error).splitlines()[0]})") from None
    try:
        return parse_scene(data)
    except SceneError as error:
        raise SceneError(f"{path}: {error}") from None


def parse_scene(data: dict) -> Scene:
    """Check and complete a scene given as a dict (the JSON object)."""
    if not isinstance(data, dict):
        raise SceneError("scene: expected a JSON object")
    if data.get("solver", "mpm") != "mpm":  # SPH scenes have keys of their own
        return parse_sph_scene(data)
    known_keys(data, SCENE_KEYS, "scene")
    for key in ("dim", "domain", "particle_spacing", "frames", "frame_dt", "blocks"):
        if key not in data:
            raise SceneError(f"scene.{key}: missing")
    dim = data["dim"]
    if dim not in (2, 3) or isinstance(dim, bool):
        raise SceneError(f"scene.dim: must be 2 or 3, got {dim!r}")
    domain = points(data["domain"], 2, dim, "scene.domain")
    lower, upper = domain
    if np.any(upper <= lower):
        raise SceneError("scene.domain: the upper corner must exceed the lower one on every axis")
    spacing = positive(data["particle_spacing"], "scene.particle_spacing")
    grid_spacing = positive(data.get("grid_spacing", 2 * spacing), "scene.grid_spacing")
    frames = data["frames"]
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 2:
        raise SceneError(f"scene.frames: must be an integer >= 2, got {frames!r}")
    walls = data.get("walls", "slip")
    if walls not in WALL_TYPES:
        raise SceneError(f"scene.walls: must be one of {', '.join(WALL_TYPES)}, got {walls!r}")
    gravity = vector(data.get("gravity", [0.0, -9.81] + [0.0] * (dim - 2)), dim, "scene.gravity")
    boundary = data.get("boundary_particles", "all")
    if boundary not in BOUNDARY_PARTICLES:
        raise SceneError(f"scene.boundary_particles: must be one of {', '.join(BOUNDARY_PARTICLES)}, got {boundary!r}")
    substeps = data.get("substeps")
    if substeps is not None and (not isinstance(substeps, int) or substeps < 1):
        raise SceneError(f"scene.substeps: must be a positive integer, got {substeps!r}")
    seeding, seed = data.get("seeding", "lattice"), data.get("seed", 0)
    if seeding not in SEEDINGS:
        raise SceneError(f"scene.seeding: must be one of {', '.join(SEEDINGS)}, got {seeding!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SceneError(f"scene.seed: must be an integer >= 0, got {seed!r}")
    if not isinstance(data["blocks"], list) or not data["blocks"]:
        raise SceneError("scene.blocks: expected a non-empty list of blocks")
    wall_friction = number(data.get("wall_friction", DEFAULT_WALL_FRICTION), "scene.wall_friction", minimum=0.0)
    obstacles = data.get("obstacles", [])
    if not isinstance(obstacles, list):
        raise SceneError("scene.obstacles: expected a list")
    blocks = [_block(b, dim, f"scene.blocks[{i}]") for i, b in enumerate(data["blocks"])]
    for i, block in enumerate(blocks):
        _check_inside(block, lower, upper, f"scene.blocks[{i}]")
    parsed_obstacles = [_obstacle(o, dim, walls, wall_friction, f"scene.obstacles[{i}]") for i, o in enumerate(obstacles)]
    for i, obstacle in enumerate(parsed_obstacles):
        _check_overlaps(obstacle, lower, upper, f"scene.obstacles[{i}]")
    return Scene(
        dim=dim, lower=lower, upper=upper, particle_spacing=spacing, grid_spacing=grid_spacing,
        frames=frames, frame_dt=positive(data["frame_dt"], "scene.frame_dt"), walls=walls,
        wall_friction=wall_friction, gravity=gravity, blocks=blocks,
        obstacles=parsed_obstacles,
        boundary_particles=boundary, cfl=positive(data.get("cfl", 0.4), "scene.cfl"), substeps=substeps,
        seeding=seeding, seed=seed, source=data,
    )


def _block(data: dict, dim: int, where: str) -> Block:
    if not isinstance(data, dict):
        raise SceneError(f"{where}: expected an object")
    known_keys(data, BLOCK_KEYS, where)
    if "material" not in data:
        raise SceneError(f"{where}.material: missing")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise SceneError(f"{where}.params: expected an object")
    try:
        material = make_material(data["material"], params, where)
    except ValueError as error:
        raise SceneError(str(error)) from None
    shapes = [s for s in ("box", "sphere", "polygon") if s in data]
    if len(shapes) != 1:
        raise SceneError(f"{where}: needs exactly one of 'box', 'sphere', 'polygon'")
    shape = shapes[0]
    if shape == "box":
        lower, upper = points(data["box"], 2, dim, f"{where}.box")
        if np.any(upper <= lower):
            raise SceneError(f"{where}.box: the upper corner must exceed the lower one on every axis")
        geometry = {"lower": lower, "upper": upper}
    elif shape == "sphere":
        sphere = data["sphere"]
        if not isinstance(sphere, dict) or "center" not in sphere or "radius" not in sphere:
            raise SceneError(f"{where}.sphere: expected {{\"center\": [...], \"radius\": r}}")
        known_keys(sphere, ROUND_KEYS, f"{where}.sphere")
        geometry = {"center": vector(sphere["center"], dim, f"{where}.sphere.center"),
                    "radius": positive(sphere["radius"], f"{where}.sphere.radius")}
    else:
        if dim != 2:
            raise SceneError(f"{where}.polygon: polygons are 2D only")
        vertices = data["polygon"]
        if not isinstance(vertices, list) or len(vertices) < 3:
            raise SceneError(f"{where}.polygon: expected at least 3 points")
        geometry = {"vertices": points(vertices, len(vertices), 2, f"{where}.polygon")}
    velocity = vector(data.get("velocity", [0.0] * dim), dim, f"{where}.velocity")
    return Block(material, shape, geometry, velocity)


def _check_inside(block: Block, lower: np.ndarray, upper: np.ndarray, where: str) -> None:
    # Particles are sampled inside the domain only: a block reaching out of it would silently lose
    # the part outside.
    low, high = _bounding_box(block)
    if np.any(low < lower) or np.any(high > upper):
        raise SceneError(
            f"{where}.{block.shape}: reaches outside the domain {[lower.tolist(), upper.tolist()]} "
            f"(spans {[low.tolist(), high.tolist()]}); its particles there would be dropped"
        )


def _check_overlaps(obstacle: dict, lower: np.ndarray, upper: np.ndarray, where: str) -> None:
    """An obstacle wholly outside the domain would silently do nothing: refuse it."""
    if obstacle["shape"] == "box":
        low, high = obstacle["lower"], obstacle["upper"]
    elif obstacle["shape"] == "ramp":
        ends = np.stack([obstacle["start"], obstacle["end"]])
        low, high = ends.min(axis=0) - obstacle["thickness"], ends.max(axis=0) + obstacle["thickness"]
    else:
        low, high = obstacle["center"] - obstacle["radius"], obstacle["center"] + obstacle["radius"]
    if np.any(high <= lower) or np.any(low >= upper):
        raise SceneError(f"{where}: lies wholly outside the domain {np.stack([lower, upper]).tolist()}")


def _obstacle(data: dict, dim: int, walls: str, friction: float, where: str) -> dict:
    if not isinstance(data, dict):
        raise SceneError(f"{where}: expected an object")
    known_keys(data, OBSTACLE_KEYS, where)
    shapes = [s for s in SHAPES if s in data]
    if len(shapes) != 1:
        raise SceneError(f"{where}: needs exactly one of {', '.join(repr(s) for s in SHAPES)}")
    shape = shapes[0]
    wall = data.get("walls", walls)
    if wall not in WALL_TYPES:
        raise SceneError(f"{where}.walls: must be one of {', '.join(WALL_TYPES)}, got {wall!r}")
    result = {"shape": shape, "walls": wall,
              "friction": number(data.get("friction", friction), f"{where}.friction", minimum=0.0)}
    if shape == "box":
        lower, upper = points(data["box"], 2, dim, f"{where}.box")
        if np.any(upper <= lower):
            raise SceneError(f"{where}.box: the upper corner must exceed the lower one on every axis")
        result.update(lower=lower, upper=upper)
    elif shape == "ramp":
        start, end = points(data["ramp"], 2, dim, f"{where}.ramp")
        if np.linalg.norm((end - start)[:2]) == 0:
            raise SceneError(f"{where}.ramp: start and end must differ in x-y")
        result.update(start=start, end=end,
                      thickness=positive(data.get("thickness", 0.02), f"{where}.thickness"))
    else:
        cylinder = data["cylinder"]
        if not isinstance(cylinder, dict) or "center" not in cylinder or "radius" not in cylinder:
            raise SceneError(f"{where}.cylinder: expected {{\"center\": [...], \"radius\": r}}")
        known_keys(cylinder, ROUND_KEYS, f"{where}.cylinder")
        result.update(center=vector(cylinder["center"], dim, f"{where}.cylinder.center"),
                      radius=positive(cylinder["radius"], f"{where}.cylinder.radius"))
    return result


def to_warp_obstacle(o: dict, dim: int, lower: np.ndarray, upper: np.ndarray) -> Obstacle:
    """The Warp struct of a parsed obstacle; ramps and cylinders span the domain along z in 3D."""
    w = Obstacle()
    w.shape = SHAPES[o["shape"]]
    w.wall = WALL_TYPES[o["walls"]]
    w.friction = o["friction"]
    z_center = 0.5 * (lower[2] + upper[2]) if dim == 3 else 0.0
    z_half = 0.5 * (upper[2] - lower[2]) + 1.0 if dim == 3 else UNBOUNDED
    w.axis = wp.vec3(1.0, 0.0, 0.0)
    if o["shape"] == "box":
        center, half = 0.5 * (o["lower"] + o["upper"]), 0.5 * (o["upper"] - o["lower"])
        w.center = wp.vec3(*center, *([0.0] if dim == 2 else []))
        w.half = wp.vec3(*half, *([UNBOUNDED] if dim == 2 else []))
    elif o["shape"] == "ramp":
        direction = (o["end"] - o["start"])[:2]
        length = float(np.linalg.norm(direction))
        center = 0.5 * (o["start"] + o["end"])
        w.center = wp.vec3(float(center[0]), float(center[1]), z_center)
        w.axis = wp.vec3(*(direction / length), 0.0)
        w.half = wp.vec3(0.5 * length, 0.5 * o["thickness"], z_half)
    else:
        w.center = wp.vec3(float(o["center"][0]), float(o["center"][1]), z_center)
        w.half = wp.vec3(o["radius"], z_half, 0.0)
    return w


# ---------------------------------------------------------------------------------------------
# Particles


def sample_blocks(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each block's particles, on the lattice or at random (`scene.seeding`): positions [N, dim],
    velocities [N, dim], block index [N]."""
    s = scene.particle_spacing
    counts = [math.floor((hi - lo) / s + 1e-6) for lo, hi in zip(scene.lower, scene.upper)]
    check_lattice(counts, scene.dim)  # also bounds the random candidates: a block's box is inside the domain
    x, owner = _scatter(scene) if scene.seeding == "random" else _lattice(scene, counts)
    check_trajectory(scene.frames, len(x), scene.dim)
    velocities = np.stack([block.velocity for block in scene.blocks])
    return x, velocities[owner], owner


def _lattice(scene: Scene, counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One lattice of `particle_spacing` over the domain, each point taken by the first block that
    contains it."""
    s = scene.particle_spacing
    axes = [lo + s * (0.5 + np.arange(count)) for lo, count in zip(scene.lower, counts)]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, scene.dim)
    owner = np.full(len(lattice), -1)
    for index, block in enumerate(scene.blocks):
        owner[(owner < 0) & _inside(block, lattice)] = index
    keep = owner >= 0
    return lattice[keep], owner[keep]


def _scatter(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points at one per particle_spacing^dim, as taichi_elements' add_cube seeds:
    each block draws its bounding box's share and keeps those inside it and outside the blocks
    before it, so a box gets round(volume / spacing^dim) particles, without the lattice's rows."""
    rng = np.random.default_rng(scene.seed)
    points, owners = [], []
    for index, block in enumerate(scene.blocks):
        low, high = _bounding_box(block)
        candidates = rng.uniform(low, high, (round(np.prod(high - low) / scene.particle_spacing**scene.dim), scene.dim))
        keep = _inside(block, candidates)
        for earlier in scene.blocks[:index]:
            keep &= ~_inside(earlier, candidates)
        points.append(candidates[keep])
        owners.append(np.full(int(keep.sum()), index))
    return np.concatenate(points), np.concatenate(owners)


def _bounding_box(block: Block) -> tuple[np.ndarray, np.ndarray]:
    g = block.geometry
    if block.shape == "box":
        return g["lower"], g["upper"]
    if block.shape == "sphere":
        return g["center"] - g["radius"], g["center"] + g["radius"]
    return g["vertices"].min(axis=0), g["vertices"].max(axis=0)


def check_grid(scene: Scene) -> None:
    """The MPM grid, before Warp allocates it: a node per grid_spacing across the domain."""
    nodes = math.prod(grid_resolution(scene.lower, scene.upper, scene.grid_spacing))
    check_memory("scene.grid_spacing", f"the grid of {nodes:.3g} nodes", nodes * (scene.dim + 1) * GRID_NODE_BYTES)


def _inside(block: Block, points: np.ndarray) -> np.ndarray:
    g = block.geometry
    if block.shape == "box":
        return np.all((points >= g["lower"]) & (points <= g["upper"]), axis=1)
    if block.shape == "sphere":
        return np.linalg.norm(points - g["center"], axis=1) <= g["radius"]
    # Even-odd rule for a polygon.
    vertices, inside = g["vertices"], np.zeros(len(points), bool)
    x, y = points[:, 0], points[:, 1]
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    return inside
