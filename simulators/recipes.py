"""Dataset recipes named after the GNS datasets: random scenes drawn from a seeded generator.

Each recipe builds one scene per trajectory. Sizes: `small` (the default: a few minutes on two
CPU cores, still enough to train a small GNS) and `paper` (the published datasets' particle
counts, frame counts, frame spacing and splits; Sanchez-Gonzalez et al. 2020, table 1 and
appendix). The connectivity radius is 5 particle spacings, so about 10 particles span its diameter.
"""

from dataclasses import dataclass

import numpy as np

CONNECTIVITY_SPACINGS = 5.0  # connectivity radius / particle spacing
MAX_START_SPEED = 0.5  # m/s, per axis


@dataclass(frozen=True)
class Size:
    particle_spacing: float  # m
    particles: tuple[int, int]  # range of material particles per trajectory
    splits: tuple[int, int, int]  # train, valid, test trajectories
    frame_dt: float  # s between saved frames

    @property
    def connectivity_radius(self) -> float:
        return CONNECTIVITY_SPACINGS * self.particle_spacing


# `paper` saves frames 0.0025 s apart, as the GNS datasets do. `small` saves every other one: per
# frame, accelerations are then 4x larger against the same training noise, and impacts (a velocity
# lost within one frame) stand 2x less above the smooth flow, which a model trained for minutes needs.
# Its 8 valid and 16 test trajectories take seconds to simulate; with fewer, a model's figures swing
# with the scenes drawn (the demo's model: 1.4x constant velocity on the first 4 test scenes, 1.6x on 16).
SIZES_2D = {"small": Size(0.01, (250, 600), (20, 8, 16), 0.005), "paper": Size(0.003, (1500, 2500), (1000, 100, 100), 0.0025)}
SIZES_3D = {"small": Size(0.025, (800, 2000), (10, 1, 1), 0.005), "paper": Size(0.007, (10000, 20000), (1000, 100, 100), 0.0025)}
# Small `water` has 2 cm particles (the same water volume, 63-150 of them). Its K = 2 MPa carries
# a pressure wave 22 cm in a 0.005 s frame, which stops a landing block at once; the `quick`
# model's 5 message-passing steps over R = 2.5 spacings reach 25 cm at 2 cm but 12.5 cm at 1 cm,
# where its whole valid rollouts scored 0.7-1.8x constant velocity (3 seeds) against 1.2-6.7x here.
WATER_SMALL_2D = Size(0.02, (63, 150), (20, 8, 16), 0.005)


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    dim: int
    materials: tuple[str, ...]  # each block draws one of these
    frames: dict[str, int]  # per size
    ramps: bool = False
    small: Size | None = None  # replaces the dimension's `small` size

    @property
    def sizes(self) -> dict[str, Size]:
        sizes = SIZES_2D if self.dim == 2 else SIZES_3D
        return sizes | {"small": self.small} if self.small else sizes

    @property
    def gravity(self) -> list[float]:
        """m/s², along -y (the vertical axis in 2D and 3D)."""
        return [0.0, -9.81] + [0.0] * (self.dim - 2)

    def dataset_info(self, size: str, metadata: dict) -> tuple[list[list[float]], dict]:
        """Bounds and metadata of the dataset (as each SPH recipe gives its own): WaterDrop's box."""
        return [[0.1, 0.9]] * self.dim, metadata

    def scene(self, rng: np.random.Generator, size: str = "small", frames: int | None = None) -> dict:
        """One random scene (the JSON dict of docs/scenes.md) for this recipe."""
        config = self.sizes[size]
        lower, upper = np.full(self.dim, 0.1), np.full(self.dim, 0.9)  # WaterDrop's bounds
        # Ramps 3 grid cells thick (grid spacing = 2 particle spacings), or particles tunnel through.
        obstacles = _ramps(rng, self.dim, lower, upper, 6 * config.particle_spacing) if self.ramps else []
        # Blocks start above the ramps, or at heights 0.1-0.4 m above the floor (y in [0.2, 0.5]):
        # impacts at up to ~3 m/s, not the ~4.5 m/s of a fall across the box, whose splashes shoot
        # single particles along the floor at 8 m/s.
        region = (np.r_[lower[0], 0.6, lower[2:]], upper) if self.ramps else \
            (np.r_[lower[0], 0.2, lower[2:]], np.r_[upper[0], 0.5, upper[2:]])
        count = int(rng.integers(*config.particles, endpoint=True))
        blocks = _blocks(rng, self.dim, region, count * config.particle_spacing**self.dim, self.materials)
        return {
            "dim": self.dim, "domain": [lower.tolist(), upper.tolist()],
            "particle_spacing": config.particle_spacing, "frames": frames or self.frames[size],
            # Sand rests on rough floors (Coulomb friction); fluids and goop slide freely.
            "frame_dt": config.frame_dt, "walls": "frictional" if "sand" in self.materials else "slip",
            "wall_friction": 0.5, "gravity": self.gravity,
            "blocks": blocks, "obstacles": obstacles,
            # WaterDrop-like sets carry no wall particles (the GNS sees wall distances); the ramp
            # sets carry their obstacles and walls as boundary particles, like WaterRamps.
            "boundary_particles": "all" if self.ramps else "none",
        }


def _blocks(rng: np.random.Generator, dim: int, region: tuple[np.ndarray, np.ndarray], volume: float,
            materials: tuple[str, ...]) -> list[dict]:
    """1-3 non-overlapping boxes of total `volume` in `region`, with random velocities (|v_i| <= MAX_START_SPEED)."""
    lower, upper = region
    count = int(rng.integers(1, 4)) if len(materials) == 1 else len(materials)
    names = list(materials) if len(materials) > 1 else [materials[0]] * count
    shares = rng.dirichlet(np.full(count, 4.0))
    placed: list[tuple[np.ndarray, np.ndarray]] = []
    for share in shares:
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), dim))
        side = (share * volume / aspect.prod()) ** (1 / dim) * aspect
        side = np.minimum(side, 0.9 * (upper - lower))
        for _ in range(100):  # rejection sampling for a free spot; overlap is harmless if none
            corner = lower + rng.uniform(0, 1, dim) * (upper - lower - side)
            if all(np.any((corner >= b_hi) | (corner + side <= b_lo)) for b_lo, b_hi in placed):
                break
        placed.append((corner, corner + side))
    return [
        {"material": name, "box": [lo.round(6).tolist(), hi.round(6).tolist()],
         "velocity": rng.uniform(-MAX_START_SPEED, MAX_START_SPEED, dim).round(6).tolist(), "params": {}}
        for name, (lo, hi) in zip(names, placed)
    ]


def _ramps(rng: np.random.Generator, dim: int, lower: np.ndarray, upper: np.ndarray,
           thickness: float) -> list[dict]:
    """1-3 tilted planks (10-40 degrees) in the band y in [0.2, 0.55], like WaterRamps' obstacles."""
    ramps = []
    for _ in range(int(rng.integers(1, 4))):
        length = rng.uniform(0.15, 0.35)
        angle = np.radians(rng.uniform(10, 40)) * rng.choice([-1, 1])
        center = np.r_[rng.uniform(lower[0] + 0.15, upper[0] - 0.15), rng.uniform(0.2, 0.55)]
        half = 0.5 * length * np.array([np.cos(angle), np.sin(angle)])
        start, end = center - half, center + half
        middle = [0.5 * (lower[2] + upper[2])] if dim == 3 else []
        ramps.append({"ramp": [np.r_[start, middle].round(6).tolist(), np.r_[end, middle].round(6).tolist()],
                      "thickness": round(thickness, 6)})
    return ramps


RECIPES = {r.name: r for r in [
    Recipe("water", "2D blobs of water with random velocities falling in a box (WaterDrop)", 2, ("water",),
           {"small": 150, "paper": 1000}, small=WATER_SMALL_2D),
    Recipe("water-ramps", "2D water falling onto random ramps (WaterRamps)", 2, ("water",),
           {"small": 150, "paper": 600}, ramps=True),
    Recipe("sand-ramps", "2D sand falling onto random ramps (SandRamps)", 2, ("sand",),
           {"small": 150, "paper": 400}, ramps=True),
    Recipe("sand", "2D blobs of sand falling in a box (Sand)", 2, ("sand",), {"small": 150, "paper": 320}),
    Recipe("goop", "2D blobs of elastoplastic goop falling in a box (Goop)", 2, ("goop",),
           {"small": 150, "paper": 400}),
    Recipe("multi-material", "2D water, sand and goop blocks interacting (MultiMaterial)", 2,
           ("water", "sand", "goop"), {"small": 150, "paper": 1000}),
    Recipe("water-3d", "3D blocks of water falling in a box (Water-3D)", 3, ("water",),
           {"small": 100, "paper": 800}),
    Recipe("sand-3d", "3D blocks of sand falling in a box (Sand-3D)", 3, ("sand",), {"small": 100, "paper": 400}),
    Recipe("goop-3d", "3D blocks of goop falling in a box (Goop-3D)", 3, ("goop",), {"small": 100, "paper": 300}),
]}

from simulators.sph_recipes import SPH_RECIPES  # the SPH cases, after the MPM ones

RECIPES |= SPH_RECIPES
