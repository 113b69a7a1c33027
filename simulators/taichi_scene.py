"""A taichi_mpm input file (geoelements' sand generator) as one of our scenes.

taichi_mpm (github.com/geoelements-dev/taichi_mpm, `run_mpm.py` over taichi_elements'
`engine/mpm_solver.py`) drops cubes of Drucker-Prager sand in a box. Its input JSON gives the
cubes (`gen_cube_from_data`: x, y, width, height), their velocities, the material (`rho`,
`elastic_modulus`, `poisson_ratio`, `friction_angle`), `wall_friction`, the grid
(`domain_size` / `sim_resolution`), the box (`sim_space`) and the frames (`nsteps`, `mpm_dt`).
Our scene reproduces their run, not their input's intent, where the two differ:
- walls: their frictional colliders act on grid nodes strictly beyond `sim_space`, so the last
  wall node is the one below 0.1 (6/64 on a 64 grid); our walls sit on that node, on the same grid;
- particles: they seed 2^dim particles per cell uniformly at random (`add_cube`); so do we
  (`"seeding": "random"` at half the grid spacing), from our own seed;
- frames: their first saved frame is the state after one frame, so we run one frame more and
  `taichi_frames` drops our initial state.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from gnsim.convert.taichi_mpm import read_trajectory
from simulators.diagnostics.deposit import compare
from simulators.scene_checks import SceneError, number, vector

MATERIAL_KEYS = {"rho": "density", "elastic_modulus": "youngs_modulus", "poisson_ratio": "poisson_ratio",
                 "friction_angle": "friction_angle"}
REQUIRED = ("domain_size", "sim_space", "sim_resolution", "nsteps", "mpm_dt", "wall_friction",
            "gen_cube_from_data", *MATERIAL_KEYS)


def load_taichi_scene(path: str | Path, seed: int = 0) -> dict:
    """Our scene for a taichi_mpm input file; SceneError naming the file on anything unreadable.
    Its particles are seeded from `seed` and the input's number, so that the inputs of a folder get
    packings of their own and an input re-run alone gets the same one."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: file not found")
    try:
        inputs = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SceneError(f"{path}: not valid JSON ({str(error).splitlines()[0]})") from None
    try:
        own_seed = np.random.SeedSequence([seed, int(_input_number(path) or 0)]).generate_state(1)[0]
        return scene_from_taichi(inputs, int(own_seed))
    except SceneError as error:
        raise SceneError(f"{path}: {error}") from None


def scene_from_taichi(inputs: dict, seed: int = 0) -> dict:
    """Our scene (the dict of docs/scenes.md) for a taichi_mpm input; one block per cube, its
    particles seeded at random from `seed`."""
    if not isinstance(inputs, dict):
        raise SceneError("taichi_mpm input: expected a JSON object")
    missing = [key for key in REQUIRED if key not in inputs]
    if missing:
        raise SceneError(f"taichi_mpm input.{missing[0]}: missing")
    try:
        space = np.asarray(inputs["sim_space"], float)
    except (TypeError, ValueError):
        space = np.zeros(0)
    dim = len(space)
    if space.shape != (dim, 2) or dim not in (2, 3) or np.any(space[:, 1] <= space[:, 0]):
        raise SceneError(f"taichi_mpm input.sim_space: expected [[lower, upper]] per axis, got {inputs['sim_space']!r}")
    resolution = inputs["sim_resolution"]
    if not (isinstance(resolution, list) and len(resolution) == dim
            and all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in resolution)):
        raise SceneError(f"taichi_mpm input.sim_resolution: expected {dim} positive integers, "
                         f"got {resolution!r}")
    grid_spacing = _number(inputs, "domain_size") / resolution[0]  # their dx = size / res[0] on every axis
    # Their collider holds a node when its position is beyond the wall point (strictly), so the
    # last wall node below `lower` is ceil(lower / dx) - 1, the first above `upper` floor(upper / dx) + 1.
    lower = (np.ceil(space[:, 0] / grid_spacing - 1e-9) - 1) * grid_spacing
    upper = (np.floor(space[:, 1] / grid_spacing + 1e-9) + 1) * grid_spacing
    params = {ours: _number(inputs, theirs) for theirs, ours in MATERIAL_KEYS.items()}
    blocks = [{"material": "sand", "box": box, "velocity": velocity, "params": params}
              for box, velocity in _cubes(inputs, dim)]
    return {
        "dim": dim, "domain": [lower.tolist(), upper.tolist()],
        # 2^dim particles per cell, as their add_cube seeds by default.
        "particle_spacing": grid_spacing / 2, "grid_spacing": grid_spacing, "seeding": "random", "seed": seed,
        "frames": int(_number(inputs, "nsteps")) + 1, "frame_dt": _number(inputs, "mpm_dt"),
        "walls": "frictional", "wall_friction": _number(inputs, "wall_friction"),
        # In 2D their run_mpm.py never applies the input's gravity: the solver keeps its own.
        "gravity": [0.0, -9.8] if dim == 2 else [float(g) for g in inputs.get("gravity", [0.0, -9.8, 0.0])],
        "blocks": blocks, "boundary_particles": "none",
    }


def _number(inputs: dict, key: str) -> float:
    return number(inputs[key], f"taichi_mpm input.{key}")


def _cubes(inputs: dict, dim: int) -> list[tuple[list, list]]:
    """(box, velocity) of each cube of the input's one `gen_cube_from_data` simulation."""
    generator = inputs["gen_cube_from_data"]
    if not isinstance(generator, dict) or not generator.get("generate"):
        raise SceneError("taichi_mpm input.gen_cube_from_data: only inputs with fixed cubes are supported "
                         "(`generate`: true); random cubes are drawn inside their run")
    simulations = generator.get("sim_inputs")
    if not isinstance(simulations, list) or len(simulations) != 1:
        raise SceneError("taichi_mpm input.gen_cube_from_data.sim_inputs: expected one simulation")
    mass = simulations[0].get("mass") if isinstance(simulations[0], dict) else None
    cubes, velocities = (mass.get("cubes"), mass.get("velocity_for_cubes")) if isinstance(mass, dict) else (None, None)
    if not isinstance(cubes, list) or not cubes or not isinstance(velocities, list) or len(velocities) != len(cubes):
        raise SceneError("taichi_mpm input.gen_cube_from_data.sim_inputs[0].mass: expected `cubes` and as many "
                         "`velocity_for_cubes`")
    where = "taichi_mpm input.gen_cube_from_data.sim_inputs[0].mass"
    result = []
    for i, (cube, velocity) in enumerate(zip(cubes, velocities)):
        cube = vector(cube, 2 * dim, f"{where}.cubes[{i}]")  # corner, then size
        velocity = vector(velocity, dim, f"{where}.velocity_for_cubes[{i}]")
        result.append(([cube[:dim].tolist(), (cube[:dim] + cube[dim:]).tolist()], velocity.tolist()))
    return result


def taichi_frames(position: np.ndarray) -> np.ndarray:
    """Our trajectory [T + 1, N, D] on their frames [T, N, D]: theirs starts one frame in."""
    return position[1:]


def cube_size(scene: dict) -> float:
    """The side of a square holding all the scene's blocks' area (m): the scale of the errors."""
    area = sum(math.prod(np.subtract(*block["box"][::-1])) for block in scene["blocks"])
    return area ** (1 / scene["dim"])


def taichi_trajectory_path(input_path: str | Path) -> Path:
    """Their trajectory beside an input: `inputs_2d_K.json` -> `trajectoryK.npz` (K its number)."""
    input_path = Path(input_path)
    number = _input_number(input_path)
    if number is None:
        raise SceneError(f"{input_path}: expected a name ending in a number, like inputs_2d_7.json")
    return input_path.with_name(f"trajectory{number}.npz")


def _input_number(path: Path) -> str | None:
    """K of `inputs_2d_K.json`, the number that pairs an input with its trajectory."""
    found = re.search(r"(\d+)\.json$", path.name)
    return found[1] if found else None


def read_taichi_trajectory(path: str | Path) -> np.ndarray:
    """Positions [T, N, D] of the one trajectory in a taichi_mpm npz (read without running pickles)."""
    return read_trajectory(Path(path)).position


def input_files(path: str | Path) -> list[Path]:
    """A taichi_mpm input file, or a folder's `inputs*.json` in the order of their numbers."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SceneError(f"{path}: no such file or folder")
    number_order = lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]
    files = sorted(path.glob("inputs*.json"), key=number_order)
    if not files:
        raise SceneError(f"{path}: holds no taichi_mpm input (inputs*.json)")
    return files


def compare_with_taichi(scene: dict, ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """deposit.compare of our run of `scene` (its initial frame included) against theirs."""
    lower, upper = scene["domain"]
    size = cube_size(scene)
    return compare(taichi_frames(ours), theirs, floor=lower[1], left=lower[0], right=upper[0],
                   column=scene["grid_spacing"], size=size, initial_area=size ** scene["dim"],
                   frame_dt=scene["frame_dt"])
