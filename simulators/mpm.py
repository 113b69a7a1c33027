"""MLS-MPM (Hu et al. 2018) with APIC transfers, as NVIDIA Warp kernels.

One substep is P2G (particles scatter mass, momentum and stress to the grid), the grid update
(momentum -> velocity, gravity, walls and obstacles) and G2P (particles gather velocity and the
affine matrix C, then move), the loop of Taichi's mpm88 with the names of the paper: particles.x,
v, C, F and grid.v, grid.m, in Warp structs (Particles, Grid, and the Scene's constants) that every
kernel takes by name. Kernels are built once per dimension from one generic source (the quadratic
B-spline stencil has 3^dim nodes), compiled on CPU, and run unchanged on CUDA.

On CUDA, P2G gathers instead of scattering: floating-point atomics would sum in an arbitrary order,
and Warp's deterministic mode sorts every contribution, over ten times the cost of a substep. Each grid
node sums the particles of its 3^dim neighbour cells itself, in a fixed order (cell by cell,
particles by index), from per-cell lists linked by integer atomics and then sorted.
"""


import math
from functools import cache
from types import SimpleNamespace

import numpy as np
import warp as wp

from simulators.cell_list import sort_cells
from simulators.colliders import Obstacle, collide
from simulators.materials import Material, MaterialParams, stress_functions

GRID_PADDING = 3  # grid nodes beyond each wall, so every stencil of a particle in the domain fits

wp.config.log_level = wp.LOG_WARNING
wp.init()


@cache
def kernels(dim: int) -> SimpleNamespace:
    """The substep's structs and kernels for `dim` = 2 or 3: P2G by scattering (p2g, then grid_update)
    or by gathering (link, sort_cells, then gather, which also updates the grid), then G2P. Every
    kernel takes the Particles, the Grid, the Scene and dt, so no launch can pass them out of order."""
    vec = wp.types.vector(dim, float)
    mat = wp.types.matrix((dim, dim), float)
    stencil = 3**dim
    # Unroll the whole stencil (27 nodes in 3D) so that its offsets are constants; no adjoints.
    options = {"max_unroll": stencil, "enable_backward": False}
    stress = stress_functions(dim)

    @wp.struct
    class Particles:
        """Each particle's state, and the lists the gathering P2G links it into."""

        x: wp.array(dtype=vec)
        v: wp.array(dtype=vec)
        C: wp.array(dtype=mat)  # APIC affine velocity
        F: wp.array(dtype=mat)  # deformation gradient
        volume_gain: wp.array(dtype=float)  # sand's owed log volume
        mass: wp.array(dtype=float)
        volume: wp.array(dtype=float)
        material: wp.array(dtype=int)  # index into Scene.materials
        affine: wp.array(dtype=mat)  # gathering only: the affine momentum link leaves for gather
        next: wp.array(dtype=int)  # gathering only: the next particle in the base cell's list

    @wp.struct
    class Grid:
        """The background grid: its nodes' momentum or velocity and mass, and its geometry."""

        v: wp.array(dtype=vec)  # momentum during P2G, then velocity
        m: wp.array(dtype=float)  # scattering only: mass
        head: wp.array(dtype=int)  # gathering only: each cell's first particle
        origin: vec  # position of node 0
        dx: float
        inv_dx: float
        strides: wp.vec3i  # flat index of a node = sum over d of its index along d * strides[d]
        resolution: wp.vec3i  # nodes per axis

    @wp.struct
    class Scene:
        """The constants of one scene: gravity, materials, the walls and the obstacles."""

        gravity: vec
        materials: wp.array(dtype=Material)
        lower: vec  # the domain, which particles never leave
        upper: vec
        wall_lower: wp.vec3  # the walls as collide sees them, a hair inside the domain
        wall_upper: wp.vec3
        walls: int
        wall_friction: float
        obstacles: wp.array(dtype=Obstacle)

    @wp.func
    def bspline(x: vec, grid: Grid):
        # Quadratic B-spline weights of the 3 nodes per axis from the base node, and the
        # particle's offset fx from that base node in cells (Hu et al. 2018, eq. 4 of mpm88).
        X = (x - grid.origin) * grid.inv_dx
        base = wp.vector(length=dim, dtype=int)
        fx = vec()
        for d in range(dim):
            base[d] = int(wp.floor(X[d] - 0.5))
            fx[d] = X[d] - float(base[d])
        w0 = 0.5 * wp.cw_mul(1.5 * vec(1.0) - fx, 1.5 * vec(1.0) - fx)
        w1 = 0.75 * vec(1.0) - wp.cw_mul(fx - vec(1.0), fx - vec(1.0))
        w2 = 0.5 * wp.cw_mul(fx - 0.5 * vec(1.0), fx - 0.5 * vec(1.0))
        return base, fx, w0, w1, w2

    @wp.func
    def stencil_node(s: int, base: wp.types.vector(dim, int), fx: vec, w0: vec, w1: vec, w2: vec,
                     strides: wp.vec3i):
        # Node s of the 3^dim stencil (digit d of s in base 3 is the offset along axis d):
        # its weight, its offset from the particle in cells, and its flat grid index.
        weight = float(1.0)  # noqa: UP018 - Warp variables are declared with their type
        offset = vec()
        node = int(0)  # noqa: UP018, RUF046
        code = s
        for d in range(dim):
            o = code % 3
            code = code // 3
            if o == 0:
                weight *= w0[d]
            elif o == 1:
                weight *= w1[d]
            else:
                weight *= w2[d]
            offset[d] = float(o) - fx[d]
            node += (base[d] + o) * strides[d]
        return weight, offset, node

    @wp.func
    def to3(a: vec):
        b = wp.vec3(0.0)
        for d in range(dim):
            b[d] = a[d]
        return b

    @wp.func
    def from3(b: wp.vec3):
        a = vec()
        for d in range(dim):
            a[d] = b[d]
        return a

    @wp.func
    def update_particle(p: int, particles: Particles, grid: Grid, scene: Scene, dt: float):
        # Deformation update F <- (I + dt C) F, then the material's return mapping and stress.
        C = particles.C[p]
        F_trial = (wp.identity(n=dim, dtype=float) + dt * C) * particles.F[p]
        F, tau, gain = stress(scene.materials[particles.material[p]], F_trial, C, particles.volume_gain[p])
        particles.F[p] = F
        particles.volume_gain[p] = gain
        # Hu et al. 2018, eq. 29: the stress enters the affine momentum with D^-1 = 4 / dx^2.
        inv_dx = grid.inv_dx
        affine = -dt * particles.volume[p] * 4.0 * inv_dx * inv_dx * tau + particles.mass[p] * C
        return affine * grid.dx  # per cell: stencil offsets are in cells

    @wp.kernel(module="unique", module_options=options)
    def p2g(particles: Particles, grid: Grid, scene: Scene, dt: float):
        p = wp.tid()
        affine_per_cell = update_particle(p, particles, grid, scene, dt)
        m = particles.mass[p]
        momentum = m * particles.v[p]
        base, fx, w0, w1, w2 = bspline(particles.x[p], grid)
        for s in range(stencil):
            weight, offset, node = stencil_node(s, base, fx, w0, w1, w2, grid.strides)
            wp.atomic_add(grid.v, node, weight * (momentum + affine_per_cell * offset))
            wp.atomic_add(grid.m, node, weight * m)

    @wp.func
    def node_velocity(g: int, momentum: vec, m: float, grid: Grid, scene: Scene, dt: float):
        v = momentum / m + dt * scene.gravity  # momentum -> velocity, then body force
        position = vec()
        for d in range(dim):
            position[d] = grid.origin[d] + grid.dx * float((g // grid.strides[d]) % grid.resolution[d])
        return from3(collide(to3(v), to3(position), scene.wall_lower, scene.wall_upper, scene.walls,
                             scene.wall_friction, scene.obstacles, dim))

    @wp.kernel(module="unique", module_options=options)
    def grid_update(grid: Grid, scene: Scene, dt: float):
        g = wp.tid()
        m = grid.m[g]
        if m > 0.0:
            grid.v[g] = node_velocity(g, grid.v[g], m, grid, scene, dt)

    @wp.kernel(module="unique", module_options=options)
    def link(particles: Particles, grid: Grid, scene: Scene, dt: float):
        # The particle update of P2G, then the particle joins the list of its base cell (the
        # stencil's first node); lists start empty (-1) and end at -1.
        p = wp.tid()
        particles.affine[p] = update_particle(p, particles, grid, scene, dt)
        base, _fx, _w0, _w1, _w2 = bspline(particles.x[p], grid)
        cell = int(0)  # noqa: UP018, RUF046
        for d in range(dim):
            cell += base[d] * grid.strides[d]
        particles.next[p] = wp.atomic_exch(grid.head, cell, p)

    @wp.kernel(module="unique", module_options=options)
    def gather(particles: Particles, grid: Grid, scene: Scene, dt: float):
        # P2G and the grid update for node g: a particle reaches g as node s of its stencil when
        # its base cell is g minus the offset of s.
        g = wp.tid()
        momentum = vec()
        m = float(0.0)  # noqa: UP018
        for s in range(stencil):
            cell = g
            code = s
            inside = True
            for d in range(dim):
                o = code % 3
                code = code // 3
                if (g // grid.strides[d]) % grid.resolution[d] < o:
                    inside = False
                cell -= o * grid.strides[d]
            p = int(-1)  # noqa: UP018, RUF046
            if inside:
                p = grid.head[cell]
            while p >= 0:
                base, fx, w0, w1, w2 = bspline(particles.x[p], grid)
                weight, offset, _node = stencil_node(s, base, fx, w0, w1, w2, grid.strides)
                momentum += weight * (particles.mass[p] * particles.v[p] + particles.affine[p] * offset)
                m += weight * particles.mass[p]
                p = particles.next[p]
        grid.v[g] = vec()
        if m > 0.0:
            grid.v[g] = node_velocity(g, momentum, m, grid, scene, dt)

    @wp.kernel(module="unique", module_options=options)
    def g2p(particles: Particles, grid: Grid, scene: Scene, dt: float):
        p = wp.tid()
        base, fx, w0, w1, w2 = bspline(particles.x[p], grid)
        new_v = vec()
        new_C = mat()
        for s in range(stencil):
            weight, offset, node = stencil_node(s, base, fx, w0, w1, w2, grid.strides)
            weighted_v = weight * grid.v[node]
            new_v += weighted_v
            new_C += wp.outer(weighted_v, offset)
        # APIC affine velocity, C = D^-1 sum_i w_i v_i (x_i - x_p)^T with D^-1 = 4 / dx^2
        # (Jiang et al. 2015); offsets are in cells, hence 4 / dx.
        new_C = 4.0 * grid.inv_dx * new_C
        particles.v[p] = new_v
        particles.C[p] = new_C
        # Walls are impenetrable: a sub-cell overshoot past a wall is put back on it.
        particles.x[p] = wp.min(wp.max(particles.x[p] + dt * new_v, scene.lower), scene.upper)

    return SimpleNamespace(Particles=Particles, Grid=Grid, Scene=Scene, p2g=p2g, grid_update=grid_update,
                           link=link, gather=gather, g2p=g2p, vec=vec, mat=mat)


def grid_resolution(lower: np.ndarray, upper: np.ndarray, dx: float) -> np.ndarray:
    """Grid nodes per axis (as floats, so that a absurd dx cannot overflow): the domain in cells of
    dx, and GRID_PADDING nodes beyond each wall."""
    return np.ceil((np.asarray(upper, float) - np.asarray(lower, float)) / dx) + 2 * GRID_PADDING + 1


GRID_NODE_BYTES = 4  # per axis of the node velocity, and once for its mass (or its cell's list head)


class MPMSolver:
    """The state of one MLS-MPM simulation (particles and grid) and its substep."""

    def __init__(self, *, lower: np.ndarray, upper: np.ndarray, dx: float, x: np.ndarray, v: np.ndarray,
                 material: np.ndarray, materials: list[MaterialParams], volume: np.ndarray,
                 gravity: np.ndarray, walls: int, wall_friction: float, obstacles: list[Obstacle],
                 device: str = "cpu", gather: bool | None = None):
        self.dim = dim = x.shape[1]
        self.device = device
        # P2G by gathering (default on CUDA, whose atomics sum in any order) or by scattering.
        self.gather = wp.get_device(device).is_cuda if gather is None else gather
        self.k = k = kernels(dim)
        lower, upper = np.asarray(lower, float), np.asarray(upper, float)
        self.dx = float(dx)
        resolution = grid_resolution(lower, upper, dx).astype(int)
        self.num_nodes = int(np.prod(resolution))
        n = len(x)
        as_array = lambda a, dtype: wp.array(np.ascontiguousarray(a), dtype=dtype, device=device)

        self.particles = particles = k.Particles()
        particles.x = as_array(x.astype(np.float32), k.vec)
        particles.v = as_array(v.astype(np.float32), k.vec)
        particles.C = wp.zeros(n, dtype=k.mat, device=device)
        particles.F = as_array(np.tile(np.eye(dim, dtype=np.float32), (n, 1, 1)), k.mat)
        particles.volume_gain = wp.zeros(n, dtype=float, device=device)
        density = np.array([m.density for m in materials])[material]
        particles.mass = as_array((density * volume).astype(np.float32), float)
        particles.volume = as_array(volume.astype(np.float32), float)
        particles.material = as_array(material.astype(np.int32), int)

        self.grid = grid = k.Grid()
        grid.v = wp.zeros(self.num_nodes, dtype=k.vec, device=device)
        grid.origin = k.vec(*(lower - GRID_PADDING * dx))
        grid.dx, grid.inv_dx = self.dx, 1.0 / self.dx
        grid.strides = wp.vec3i(*[int(np.prod(resolution[d + 1:])) for d in range(dim)], *[0] * (3 - dim))
        grid.resolution = wp.vec3i(*resolution.tolist(), *[1] * (3 - dim))
        if self.gather:  # per-cell particle lists, and each particle's affine momentum
            grid.head = wp.empty(self.num_nodes, dtype=int, device=device)
            particles.next = wp.empty(n, dtype=int, device=device)
            particles.affine = wp.empty(n, dtype=k.mat, device=device)
        else:
            grid.m = wp.zeros(self.num_nodes, dtype=float, device=device)

        self.scene = scene = k.Scene()
        scene.gravity = k.vec(*np.asarray(gravity, float))
        scene.materials = wp.array([m.to_warp(dim) for m in materials], dtype=Material, device=device)
        scene.lower, scene.upper = k.vec(*lower), k.vec(*upper)
        pad3 = lambda a: wp.vec3(*[float(t) for t in a], *[0.0] * (3 - dim))
        # Nodes on a wall count as inside it, whatever the float rounding of their position.
        scene.wall_lower, scene.wall_upper = pad3(lower + 1e-3 * dx), pad3(upper - 1e-3 * dx)
        scene.walls, scene.wall_friction = int(walls), float(wall_friction)
        scene.obstacles = wp.array(obstacles, dtype=Obstacle, device=device) if obstacles else \
            wp.empty(0, dtype=Obstacle, device=device)
        self._graph, self._graph_dt = None, None

    def substep(self, dt: float) -> None:
        """Advance every particle by dt: P2G, grid update, G2P."""
        if dt != self._graph_dt:
            self._graph, self._graph_dt = self._capture(dt), dt
        wp.capture_launch(self._graph)

    def _capture(self, dt: float) -> wp.Graph:
        # One substep as a graph: CUDA replays it without Python packing each launch (Warp CPU
        # graphs replay in C++).
        k, device = self.k, self.device
        p2g = (k.link, sort_cells, k.gather) if self.gather else (k.p2g, k.grid_update)
        for kernel in (*p2g, k.g2p):  # compiled outside the capture
            wp.load_module(kernel.module, device=device)
        particles, grid, scene = self.particles, self.grid, self.scene
        n = len(particles.x)
        with wp.ScopedCapture(device=device, force_module_load=False) as capture:
            if self.gather:
                grid.head.fill_(-1)
                wp.launch(k.link, dim=n, device=device, inputs=[particles, grid, scene, dt])
                wp.launch(sort_cells, dim=self.num_nodes, device=device, inputs=[grid.head, particles.next])
                wp.launch(k.gather, dim=self.num_nodes, device=device, inputs=[particles, grid, scene, dt])
            else:
                grid.v.zero_()
                grid.m.zero_()
                wp.launch(k.p2g, dim=n, device=device, inputs=[particles, grid, scene, dt])
                wp.launch(k.grid_update, dim=self.num_nodes, device=device, inputs=[grid, scene, dt])
            wp.launch(k.g2p, dim=n, device=device, inputs=[particles, grid, scene, dt])
        return capture.graph

    def positions(self) -> np.ndarray:
        """Particle positions [N, dim] float32 (a view on CPU, a copy from CUDA)."""
        return self.particles.x.numpy()

    def velocities(self) -> np.ndarray:
        return self.particles.v.numpy()

    def volume_ratios(self) -> np.ndarray:
        """J = det F per particle: the current volume over the initial one."""
        return np.linalg.det(self.particles.F.numpy().astype(np.float64))


def time_step(dx: float, materials: list[MaterialParams], max_speed: float, cfl: float = 0.4) -> float:
    """Largest stable substep (s): the CFL condition on the fastest wave plus the flow speed,
    and the explicit viscous limit dt < rho dx^2 / (2 dim eta) for viscous water."""
    wave = max(m.wave_speed() for m in materials)
    dt = cfl * dx / (wave + max_speed)
    for m in materials:
        eta = m.params.get("viscosity", 0.0)
        if eta > 0:
            dt = min(dt, 0.25 * m.density * dx * dx / eta)
    return dt


def free_fall_speed(height: float, gravity: float) -> float:
    """sqrt(2 g h): the fastest a body falls across the domain's height (m/s)."""
    return math.sqrt(2 * abs(gravity) * max(height, 0.0))
