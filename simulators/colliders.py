"""Static colliders: the domain walls and signed-distance obstacles (box, ramp, cylinder).

The grid update applies a wall condition to every grid node inside a collider whose velocity
points into it: sticky (v = 0), slip (normal part removed) or frictional (Coulomb friction on
the tangential part). Obstacles and walls also appear in datasets as boundary particles sampled
on their surfaces, from the same signed-distance functions.
"""


import numpy as np
import warp as wp

# wp.constant: the kernels branch on these names, not on bare numbers.
BOX, RAMP, CYLINDER = wp.constant(0), wp.constant(1), wp.constant(2)
SHAPES = {"box": BOX, "ramp": RAMP, "cylinder": CYLINDER}
STICKY, SLIP, FRICTIONAL = 0, 1, 2
WALL_TYPES = {"sticky": STICKY, "slip": SLIP, "frictional": FRICTIONAL}
UNBOUNDED = 1.0e30  # the half extent of an axis a 2D obstacle does not have


@wp.struct
class Obstacle:
    """A static obstacle; always stored in 3D (z ignored in 2D scenes)."""

    shape: int  # BOX, RAMP or CYLINDER
    center: wp.vec3
    half: wp.vec3  # box: half extents; ramp: (half length, half thickness, half width); cylinder: (radius, half length along z, -)
    axis: wp.vec3  # ramp: unit direction along its length, in the x-y plane
    wall: int  # STICKY, SLIP or FRICTIONAL
    friction: float  # Coulomb coefficient for FRICTIONAL


@wp.func
def box_distance(q: wp.vec3, half: wp.vec3):
    # Signed distance to an axis-aligned box centred at the origin (Quilez).
    d = wp.vec3(wp.abs(q[0]) - half[0], wp.abs(q[1]) - half[1], wp.abs(q[2]) - half[2])
    outside = wp.length(wp.vec3(wp.max(d[0], 0.0), wp.max(d[1], 0.0), wp.max(d[2], 0.0)))
    return outside + wp.min(wp.max(d[0], wp.max(d[1], d[2])), 0.0)


@wp.func
def obstacle_distance(o: Obstacle, p: wp.vec3):
    """Signed distance (m) from p to obstacle o, negative inside."""
    q = p - o.center
    if o.shape == BOX:
        return box_distance(q, o.half)
    if o.shape == RAMP:
        normal = wp.vec3(-o.axis[1], o.axis[0], 0.0)
        return box_distance(wp.vec3(wp.dot(q, o.axis), wp.dot(q, normal), q[2]), o.half)
    # Cylinder with its axis along z, like the ramps: a circle in 2D, where half[1] is unbounded.
    radial = wp.sqrt(q[0] * q[0] + q[1] * q[1]) - o.half[0]
    axial = wp.abs(q[2]) - o.half[1]
    outside = wp.length(wp.vec2(wp.max(radial, 0.0), wp.max(axial, 0.0)))
    return outside + wp.min(wp.max(radial, axial), 0.0)


@wp.func
def wall_velocity(v: wp.vec3, normal: wp.vec3, wall: int, friction: float):
    """Velocity after contact with a wall of outward unit `normal` (pointing out of the wall)."""
    normal_speed = wp.dot(v, normal)
    if normal_speed >= 0.0:
        return v  # separating: no constraint
    if wall == 0:
        return wp.vec3(0.0)
    tangential = v - normal_speed * normal
    if wall == 1:
        return tangential
    # Coulomb friction: tangential speed drops by mu |v_n|, or to rest (Bridson's collide).
    speed = wp.length(tangential)
    if speed <= -friction * normal_speed:
        return wp.vec3(0.0)
    return tangential * (1.0 + friction * normal_speed / speed)


@wp.func
def collide(v: wp.vec3, p: wp.vec3, lower: wp.vec3, upper: wp.vec3, walls: int, wall_friction: float,
            obstacles: wp.array(dtype=Obstacle), dim: int):
    """Apply the domain walls and every obstacle to a grid node velocity v at position p."""
    for d in range(dim):
        if p[d] <= lower[d]:
            e = wp.vec3(0.0)
            e[d] = 1.0
            v = wall_velocity(v, e, walls, wall_friction)
        if p[d] >= upper[d]:
            e = wp.vec3(0.0)
            e[d] = -1.0
            v = wall_velocity(v, e, walls, wall_friction)
    for k in range(obstacles.shape[0]):
        o = obstacles[k]
        if obstacle_distance(o, p) < 0.0:
            # Outward normal by central differences of the distance: one code for every shape.
            h = 1.0e-5
            n = wp.vec3(0.0)
            for d in range(dim):
                e = wp.vec3(0.0)
                e[d] = h
                n[d] = obstacle_distance(o, p + e) - obstacle_distance(o, p - e)
            if wp.length(n) > 0.0:
                v = wall_velocity(v, wp.normalize(n), o.wall, o.friction)
    return v


@wp.kernel
def surface_shell(points: wp.array(dtype=wp.vec3), obstacles: wp.array(dtype=Obstacle),
                  lower: wp.vec3, upper: wp.vec3, thickness: float, walls: int,
                  dim: int, inside: wp.array(dtype=int)):
    # 1 where a lattice point lies within `thickness` inside an obstacle or (walls=1) outside the domain.
    i = wp.tid()
    p = points[i]
    inside[i] = 0
    if walls == 1:
        outside = float(-UNBOUNDED)
        for d in range(dim):
            outside = wp.max(outside, wp.max(lower[d] - p[d], p[d] - upper[d]))
        if outside > 0.0 and outside <= thickness:
            inside[i] = 1
    for k in range(obstacles.shape[0]):
        phi = obstacle_distance(obstacles[k], p)
        if phi <= 0.0 and phi > -thickness:
            inside[i] = 1


def boundary_particles(obstacles: list[Obstacle], lower: np.ndarray, upper: np.ndarray, spacing: float,
                       walls: bool, device: str = "cpu") -> np.ndarray:
    """Points [M, dim] on a lattice of `spacing`, one layer thick, on obstacle surfaces and (if
    `walls`) just outside the domain's walls; obstacle points outside the domain are dropped."""
    dim = len(lower)
    if not obstacles and not walls:
        return np.zeros((0, dim), np.float32)
    # A lattice offset by half a spacing from the walls, one spacing beyond them.
    axes = [lo - 0.5 * spacing + spacing * np.arange(-1, round((hi - lo) / spacing) + 2) for lo, hi in zip(lower, upper)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
    if walls:
        keep = np.ones(len(mesh), bool)
    else:
        keep = np.all((mesh > lower) & (mesh < upper), axis=1)
    mesh = mesh[keep]
    points = np.zeros((len(mesh), 3), np.float32)
    points[:, :dim] = mesh
    inside = wp.zeros(len(mesh), dtype=int, device=device)
    table = wp.array(obstacles if obstacles else [Obstacle()], dtype=Obstacle, device=device)
    wp.launch(surface_shell, dim=len(mesh), device=device,
              inputs=[wp.array(points, dtype=wp.vec3, device=device), table if obstacles else table[:0],
                      wp.vec3(*_pad3(lower)), wp.vec3(*_pad3(upper)), float(spacing), int(walls), dim, inside])
    return mesh[inside.numpy().astype(bool)].astype(np.float32)


def _pad3(values) -> list[float]:
    return [float(v) for v in values] + [0.0] * (3 - len(values))
