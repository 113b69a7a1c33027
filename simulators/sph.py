"""Weakly compressible SPH with the transport-velocity formulation, as NVIDIA Warp kernels.

The scheme of Adami, Hu & Adams 2013 (J. Comput. Phys. 241, 292) as LagrangeBench's generator,
jax-sph, runs it: the quintic spline kernel with h = dx and support 3h, density by summation,
a Tait equation of state, Morris-style laminar viscosity, and the generalised wall boundary
condition of Adami, Hu & Adams 2012 (J. Comput. Phys. 231, 7057) on layers of wall particles.
Positions advance with the transport velocity u + dt/2 * (-grad p_b / rho), which keeps the
particles evenly spread; the momentum equation carries the extra stress A = rho u (u~ - u).

Neighbours come from a uniform cell list built on the device (cells at least 3h wide, periodic
axes wrapped): each particle's cell list is linked with integer atomics and then sorted by index,
and every particle gathers its own sums, cell by cell in a fixed order. No float is ever
accumulated by atomics, so the same scene gives the same bytes run after run, on CPU and CUDA.
"""

import math
from functools import cache
from types import SimpleNamespace

import numpy as np
import warp as wp

from simulators.cell_list import sort_cells

wp.config.log_level = wp.LOG_WARNING
wp.init()

FLUID, WALL = 0, 1  # particle kinds inside the solver
SUPPORT = 3.0  # kernel support radius in smoothing lengths (quintic spline)


@cache
def kernels(dim: int) -> SimpleNamespace:
    """The step's kernels for `dim` = 2 or 3."""
    vec = wp.types.vector(dim, float)
    stencil = 3**dim
    options = {"max_unroll": stencil, "enable_backward": False}
    # Quintic spline normalisation (Morris, Fox & Zhu 1997): 7/(478 pi h^2) in 2D, 3/(359 pi h^3) in 3D.
    norm = 7.0 / (478.0 * math.pi) if dim == 2 else 3.0 / (359.0 * math.pi)

    @wp.func
    def w_quintic(r: float, h: float):
        q = r / h
        w = float(0.0)  # noqa: UP018
        if q < 3.0:
            w = (3.0 - q) ** 5.0
            if q < 2.0:
                w -= 6.0 * (2.0 - q) ** 5.0
            if q < 1.0:
                w += 15.0 * (1.0 - q) ** 5.0
        return norm * w / h ** float(dim)

    @wp.func
    def dw_quintic(r: float, h: float):
        # dW/dr (negative inside the support).
        q = r / h
        dw = float(0.0)  # noqa: UP018
        if q < 3.0:
            dw = -5.0 * (3.0 - q) ** 4.0
            if q < 2.0:
                dw += 30.0 * (2.0 - q) ** 4.0
            if q < 1.0:
                dw -= 75.0 * (1.0 - q) ** 4.0
        return norm * dw / h ** float(dim + 1)

    @wp.func
    def cell_coords(x: vec, origin: vec, inv_cell: vec, cells: wp.vec3i, periodic: wp.vec3i):
        c = wp.vec3i(0)
        for d in range(dim):
            k = int(wp.floor((x[d] - origin[d]) * inv_cell[d]))
            if periodic[d] != 0:
                k = ((k % cells[d]) + cells[d]) % cells[d]
            else:
                k = wp.clamp(k, 0, cells[d] - 1)
            c[d] = k
        return c

    @wp.func
    def flat(c: wp.vec3i, cells: wp.vec3i):
        return (c[0] * cells[1] + c[1]) * cells[2] + c[2]

    @wp.func
    def neighbour_cell(c: wp.vec3i, s: int, cells: wp.vec3i, periodic: wp.vec3i):
        # Cell s of the 3^dim block around c (digit d of s in base 3 is the offset + 1 along
        # axis d), wrapped on periodic axes; -1 beyond a non-periodic edge.
        n = wp.vec3i(0)
        code = s
        inside = True
        for d in range(dim):
            k = c[d] + code % 3 - 1
            code = code // 3
            if periodic[d] != 0:
                k = (k + cells[d]) % cells[d]
            elif k < 0 or k >= cells[d]:
                inside = False
            n[d] = k
        result = int(-1)  # noqa: UP018, RUF046
        if inside:
            result = flat(n, cells)
        return result

    @wp.func
    def first_in_cell(c: wp.vec3i, s: int, head: wp.array(dtype=int), cells: wp.vec3i, periodic: wp.vec3i):
        # The first particle of cell s of the block around c (its list goes on through `next`);
        # -1 for an empty cell or one beyond a non-periodic edge.
        j = int(-1)  # noqa: UP018, RUF046
        cell = neighbour_cell(c, s, cells, periodic)
        if cell >= 0:
            j = head[cell]
        return j

    @wp.func
    def separation(xi: vec, xj: vec, length: vec, periodic: wp.vec3i):
        # x_i - x_j, minimum image on periodic axes.
        r = xi - xj
        for d in range(dim):
            if periodic[d] != 0:
                r[d] = r[d] - length[d] * wp.round(r[d] / length[d])
        return r

    @wp.func
    def body_force(x: vec, gravity: vec, flip_axis: int, flip_at: float):
        # The scene's gravity, reversed where x[flip_axis] > flip_at (a reverse-Poiseuille flow's
        # two opposite streams); flip_axis < 0: gravity everywhere, the same bytes as without it.
        g = gravity
        if flip_axis >= 0:  # noqa: SIM102 (Warp's `and` does not short-circuit: x[-1] would be read)
            if x[flip_axis] > flip_at:
                g = -gravity
        return g

    @wp.kernel(module="unique", module_options=options)
    def link(x: wp.array(dtype=vec), origin: vec, inv_cell: vec, cells: wp.vec3i, periodic: wp.vec3i,
             head: wp.array(dtype=int), next: wp.array(dtype=int)):
        p = wp.tid()
        cell = flat(cell_coords(x[p], origin, inv_cell, cells, periodic), cells)
        next[p] = wp.atomic_exch(head, cell, p)

    @wp.kernel(module="unique", module_options=options)
    def density(x: wp.array(dtype=vec), mass: wp.array(dtype=float), kind: wp.array(dtype=int),
                head: wp.array(dtype=int), next: wp.array(dtype=int), origin: vec, inv_cell: vec,
                cells: wp.vec3i, periodic: wp.vec3i, length: vec, h: float, rho0: float,
                p_ref: float, gamma: float, rho: wp.array(dtype=float), p: wp.array(dtype=float)):
        # Density by summation over fluid and wall neighbours, rho_i = m_i sum_j W_ij, then the
        # Tait equation p = p_ref ((rho / rho0)^gamma - 1). Wall values are set by `walls`.
        i = wp.tid()
        if kind[i] != FLUID:
            return
        c = cell_coords(x[i], origin, inv_cell, cells, periodic)
        sigma = float(0.0)  # noqa: UP018
        for s in range(stencil):
            j = first_in_cell(c, s, head, cells, periodic)
            while j >= 0:
                sigma += w_quintic(wp.length(separation(x[i], x[j], length, periodic)), h)
                j = next[j]
        rho[i] = mass[i] * sigma
        p[i] = p_ref * (wp.pow(rho[i] / rho0, gamma) - 1.0)

    @wp.kernel(module="unique", module_options=options)
    def continuity(x: wp.array(dtype=vec), u: wp.array(dtype=vec), wall_velocity: wp.array(dtype=vec),
                   mass: wp.array(dtype=float), kind: wp.array(dtype=int), rho_old: wp.array(dtype=float),
                   head: wp.array(dtype=int), next: wp.array(dtype=int), origin: vec, inv_cell: vec,
                   cells: wp.vec3i, periodic: wp.vec3i, length: vec, h: float, rho0: float, p_ref: float,
                   gamma: float, dt: float, rho: wp.array(dtype=float), p: wp.array(dtype=float)):
        # Density by the continuity equation (Adami 2013, eq. 6 in jax-sph's form):
        # drho_i/dt = rho_i sum_j (m_j / rho_j) (u_i - u_j) . grad W_ij over fluid and wall
        # neighbours (a wall moves with its prescribed velocity). Density is advanced like the
        # positions, by a whole step with the half-kicked velocity at the drifted positions,
        # rho = rho_old + dt drho/dt: that leapfrog conserves the energy of an acoustic wave.
        # (Splitting the step into two halves of the rate at either end, as the velocity is
        # split, amplifies each acoustic mode by sqrt(1 + (c k dt)^2 / 2) per step; measured
        # here, it blew up a dam break by t = 1.) Every particle reads the densities of the
        # previous step (`rho_old`, copied by `kick_drift`) and writes only its own.
        i = wp.tid()
        if kind[i] != FLUID:
            return
        c = cell_coords(x[i], origin, inv_cell, cells, periodic)
        rate = float(0.0)  # noqa: UP018
        for s in range(stencil):
            j = first_in_cell(c, s, head, cells, periodic)
            while j >= 0:
                if j != i:
                    r_ij = separation(x[i], x[j], length, periodic)
                    r = wp.length(r_ij)
                    if r < SUPPORT * h and r > 0.0:
                        u_j = u[j]
                        if kind[j] != FLUID:
                            u_j = wall_velocity[j]
                        rate += mass[j] / rho_old[j] * wp.dot(u[i] - u_j, (dw_quintic(r, h) / r) * r_ij)
                j = next[j]
        rho[i] = rho_old[i] + dt * (rho_old[i] * rate)  # drho/dt = rho_i * rate
        p[i] = p_ref * (wp.pow(rho[i] / rho0, gamma) - 1.0)

    @wp.kernel(module="unique", module_options=options)
    def walls(x: wp.array(dtype=vec), u: wp.array(dtype=vec), kind: wp.array(dtype=int),
              wall_velocity: wp.array(dtype=vec), head: wp.array(dtype=int), next: wp.array(dtype=int),
              origin: vec, inv_cell: vec, cells: wp.vec3i, periodic: wp.vec3i, length: vec, h: float,
              rho0: float, p_ref: float, gamma: float, gravity: vec, flip_axis: int, flip_at: float,
              rho: wp.array(dtype=float), p: wp.array(dtype=float), u_wall: wp.array(dtype=vec)):
        # Adami 2012, eqs. 22 and 27: a wall particle takes the Shepard average of its fluid
        # neighbours' pressure plus the hydrostatic part rho (g - a_w) . (x_w - x_f) (walls do
        # not accelerate here), its density from the inverse equation of state, and for the
        # viscous term the velocity 2 u_w - <u_f>, which makes the wall no-slip. The body force
        # is the one at the wall particle (reversed beyond a gravity-reversal plane).
        i = wp.tid()
        if kind[i] != WALL:
            u_wall[i] = u[i]
            return
        g_w = body_force(x[i], gravity, flip_axis, flip_at)
        c = cell_coords(x[i], origin, inv_cell, cells, periodic)
        weight = float(0.0)  # noqa: UP018
        pressure = float(0.0)  # noqa: UP018
        velocity = vec()
        for s in range(stencil):
            j = first_in_cell(c, s, head, cells, periodic)
            while j >= 0:
                if kind[j] == FLUID:
                    r = separation(x[i], x[j], length, periodic)
                    w = w_quintic(wp.length(r), h)
                    weight += w
                    pressure += w * (p[j] + rho[j] * wp.dot(g_w, r))
                    velocity += w * u[j]
                j = next[j]
        p_w = float(0.0)  # noqa: UP018
        mean_u = vec()
        if weight > 0.0:
            p_w = pressure / weight
            mean_u = velocity / weight
        p[i] = p_w
        rho[i] = rho0 * wp.pow(wp.max(p_w / p_ref + 1.0, 1.0e-3), 1.0 / gamma)
        u_wall[i] = 2.0 * wall_velocity[i] - mean_u

    @wp.kernel(module="unique", module_options=options)
    def forces(x: wp.array(dtype=vec), u: wp.array(dtype=vec), transport: wp.array(dtype=vec),
               u_wall: wp.array(dtype=vec), rho: wp.array(dtype=float), p: wp.array(dtype=float),
               mass: wp.array(dtype=float), kind: wp.array(dtype=int), head: wp.array(dtype=int),
               next: wp.array(dtype=int), origin: vec, inv_cell: vec, cells: wp.vec3i,
               periodic: wp.vec3i, length: vec, h: float, eta: float, p_background: float,
               alpha: float, c_alpha: float, gravity: vec, flip_axis: int, flip_at: float,
               dudt: wp.array(dtype=vec), dvdt: wp.array(dtype=vec)):
        # Adami 2013, eqs. 8 and 13: pressure with the density-weighted inter-particle pressure,
        # laminar viscosity, the transport stress A = rho u (u~ - u), and the background-pressure
        # acceleration that shifts positions (dvdt); with alpha > 0, Monaghan's artificial
        # viscosity between fluid particles in jax-sph's form (no switch on approach):
        # m_j alpha h c (u_ij . r_ij) grad W_ij / (rho_ij (r^2 + 0.01 h^2)), rho_ij the mean density.
        i = wp.tid()
        if kind[i] != FLUID:
            return
        c = cell_coords(x[i], origin, inv_cell, cells, periodic)
        v_i = mass[i] / rho[i]
        shift_i = transport[i] - u[i]
        a = vec()
        b = vec()
        artificial = vec()
        for s in range(stencil):
            j = first_in_cell(c, s, head, cells, periodic)
            while j >= 0:
                if j != i:
                    r_ij = separation(x[i], x[j], length, periodic)
                    r = wp.length(r_ij)
                    if r < SUPPORT * h and r > 0.0:
                        dw = dw_quintic(r, h)
                        grad = (dw / r) * r_ij
                        v_j = mass[j] / rho[j]
                        volumes = v_i * v_i + v_j * v_j
                        p_ij = (rho[j] * p[i] + rho[i] * p[j]) / (rho[i] + rho[j])
                        a += -volumes * p_ij * grad
                        a += volumes * eta * (u[i] - u_wall[j]) * (dw / r)
                        # A_i . grad + A_j . grad, with A = rho u (u~ - u); zero for walls.
                        stress = rho[i] * u[i] * wp.dot(shift_i, grad)
                        if kind[j] == FLUID:
                            stress += rho[j] * u[j] * wp.dot(transport[j] - u[j], grad)
                        a += 0.5 * volumes * stress
                        b += -volumes * p_background * grad
                        if alpha > 0.0 and kind[j] == FLUID:
                            mu = alpha * h * c_alpha * wp.dot(u[i] - u[j], r_ij) / (r * r + 0.01 * h * h)
                            artificial += (mass[j] * mu / (0.5 * (rho[i] + rho[j]))) * grad
                j = next[j]
        dudt[i] = a / mass[i] + artificial + body_force(x[i], gravity, flip_axis, flip_at)
        dvdt[i] = b / mass[i]

    @wp.kernel(module="unique", module_options=options)
    def kick_drift(x: wp.array(dtype=vec), u: wp.array(dtype=vec), transport: wp.array(dtype=vec),
                   dudt: wp.array(dtype=vec), dvdt: wp.array(dtype=vec), kind: wp.array(dtype=int),
                   rho: wp.array(dtype=float), dt: float, lower: vec, length: vec, periodic: wp.vec3i,
                   rho_old: wp.array(dtype=float)):
        # Half a kick of the momentum velocity, the transport velocity from it, a full drift
        # with the transport velocity, then periodic wrapping into [lower, lower + length).
        # The densities are copied for the continuity equation to read.
        i = wp.tid()
        rho_old[i] = rho[i]
        if kind[i] != FLUID:
            return
        u[i] = u[i] + 0.5 * dt * dudt[i]
        transport[i] = u[i] + 0.5 * dt * dvdt[i]
        y = x[i] + dt * transport[i]
        for d in range(dim):
            if periodic[d] != 0:
                t = y[d] - lower[d]
                t = t - length[d] * wp.floor(t / length[d])
                if t >= length[d]:  # float rounding of a point just below lower
                    t = 0.0
                y[d] = lower[d] + t
        x[i] = y

    @wp.kernel(module="unique", module_options=options)
    def kick(u: wp.array(dtype=vec), dudt: wp.array(dtype=vec), kind: wp.array(dtype=int), dt: float):
        i = wp.tid()
        if kind[i] == FLUID:
            u[i] = u[i] + 0.5 * dt * dudt[i]

    return SimpleNamespace(link=link, density=density, continuity=continuity, walls=walls, forces=forces,
                           kick_drift=kick_drift, kick=kick, vec=vec)


class SPHSolver:
    """The state of one SPH simulation: fluid particles, then wall particles, and its step.

    `x`, `u`: positions and velocities [N, dim]; `kind`: FLUID or WALL per particle; `wall_velocity`
    [N, dim] (read for walls only); `lower`, `upper`: the fluid domain, periodic along `periodic`.
    Every particle has mass rho0 dx^dim. Units SI: `viscosity` is dynamic (Pa s).
    `density_evolution`: "summation" (rho = sum m W) or "continuity" (drho/dt integrated, for free
    surfaces, where a summation misses the neighbours beyond the surface); `artificial_viscosity`:
    Monaghan's alpha (0: off). Negative pressures are kept (no floor), as jax-sph keeps them.
    `gravity_reversal` (axis, at): the body force is -gravity where x[axis] > at (reverse Poiseuille).
    """

    def __init__(self, *, x: np.ndarray, u: np.ndarray, kind: np.ndarray, wall_velocity: np.ndarray,
                 lower: np.ndarray, upper: np.ndarray, periodic: list[bool], dx: float, density: float,
                 sound_speed: float, viscosity: float, gravity: np.ndarray, gamma: float = 1.0,
                 background_pressure_factor: float = 5.0, transport_velocity: bool = True,
                 density_evolution: str = "summation", artificial_viscosity: float = 0.0,
                 gravity_reversal: tuple[int, float] | None = None, device: str = "cpu"):
        self.dim = dim = x.shape[1]
        self.device = device
        self.k = kernels(dim)
        self.h = float(dx)  # jax-sph's choice: h = dx, so 3h reaches 3 particle spacings
        self.rho0, self.c0, self.gamma = float(density), float(sound_speed), float(gamma)
        self.p_ref = self.rho0 * self.c0**2 / self.gamma
        self.eta = float(viscosity)
        if density_evolution not in ("summation", "continuity"):
            raise ValueError(f"density_evolution: 'summation' or 'continuity', got {density_evolution!r}")
        self.continuity = density_evolution == "continuity"
        self.alpha = float(artificial_viscosity)
        # The background pressure of the transport velocity, in units of rho0 c0^2 / gamma: at 1
        # (jax-sph's) a Taylor-Green vortex started on a lattice decays 1.15x too fast, in jax-sph
        # alike (benchmarks/sph.py); at 5 it decays as it should.
        self.p_background = background_pressure_factor * self.p_ref if transport_velocity else 0.0
        self.gravity = self.k.vec(*np.asarray(gravity, float))
        # (axis, at): gravity reverses where x[axis] > at; (-1, 0): gravity everywhere.
        self.flip_axis, self.flip_at = (int(gravity_reversal[0]), float(gravity_reversal[1])) \
            if gravity_reversal is not None else (-1, 0.0)
        lower, upper = np.asarray(lower, float), np.asarray(upper, float)
        self.periodic = [bool(t) for t in periodic]
        self.lower, self.length = self.k.vec(*lower), self.k.vec(*(upper - lower))
        self.periodic3 = wp.vec3i(*[int(t) for t in self.periodic], *[0] * (3 - dim))
        # Cells at least one support wide over the particles' extent (walls included).
        reach = SUPPORT * self.h
        low = np.where(self.periodic, lower, np.minimum(lower, x.min(axis=0)) - reach)
        high = np.where(self.periodic, upper, np.maximum(upper, x.max(axis=0)) + reach)
        # The 1e-6 lets 0.9 / 0.3 make 3 cells, as the scene's check allows; a pair that it puts two
        # cells apart is at most 1e-6 short of the support, where the kernel is below 1e-30.
        cells = np.maximum(np.floor((high - low) / reach * (1 + 1e-6)).astype(int), 1)
        if any(p and c < 3 for p, c in zip(self.periodic, cells)):
            raise ValueError("a periodic side must be at least 3 kernel supports (9 particle spacings) long")
        self.origin = self.k.vec(*low)
        self.inv_cell = self.k.vec(*(cells / (high - low)))
        self.cells = wp.vec3i(*cells.tolist(), *[1] * (3 - dim))
        self.num_cells = int(np.prod(cells))
        n = len(x)
        as_array = lambda a, dtype: wp.array(np.ascontiguousarray(a, dtype=np.float32 if dtype is not int else np.int32),
                                             dtype=dtype, device=device)
        self.x = as_array(x, self.k.vec)
        self.u = as_array(u * (kind == FLUID)[:, None], self.k.vec)
        self.transport = as_array(u * (kind == FLUID)[:, None], self.k.vec)
        self.kind = as_array(kind, int)
        self.wall_velocity = as_array(wall_velocity, self.k.vec)
        self.mass = as_array(np.full(n, self.rho0 * dx**dim), float)
        self.rho = as_array(np.full(n, self.rho0), float)
        self.rho_old = as_array(np.full(n, self.rho0), float)  # the previous step's, for continuity
        self.p = wp.zeros(n, dtype=float, device=device)
        self.u_wall = wp.zeros(n, dtype=self.k.vec, device=device)
        self.dudt = wp.zeros(n, dtype=self.k.vec, device=device)
        self.dvdt = wp.zeros(n, dtype=self.k.vec, device=device)
        self.head = wp.empty(self.num_cells, dtype=int, device=device)
        self.next = wp.empty(n, dtype=int, device=device)
        self._graph, self._graph_dt = None, None
        self._accelerations(0.0)  # the first half kick needs the forces at t = 0

    def _grid(self) -> list:
        return [self.head, self.next, self.origin, self.inv_cell, self.cells, self.periodic3, self.length, self.h]

    def _accelerations(self, dt: float) -> None:
        # Neighbour lists, density and pressure (under continuity, the density step of length dt),
        # the wall condition, then the forces.
        k, n, device = self.k, len(self.x), self.device
        self.head.fill_(-1)
        wp.launch(k.link, dim=n, device=device, inputs=[self.x, self.origin, self.inv_cell, self.cells,
                                                         self.periodic3, self.head, self.next])
        wp.launch(sort_cells, dim=self.num_cells, device=device, inputs=[self.head, self.next])
        if self.continuity:
            wp.launch(k.continuity, dim=n, device=device, inputs=[
                self.x, self.u, self.wall_velocity, self.mass, self.kind, self.rho_old, *self._grid(), self.rho0,
                self.p_ref, self.gamma, dt, self.rho, self.p])
        else:
            wp.launch(k.density, dim=n, device=device, inputs=[
                self.x, self.mass, self.kind, *self._grid(), self.rho0, self.p_ref, self.gamma, self.rho,
                self.p])
        wp.launch(k.walls, dim=n, device=device, inputs=[
            self.x, self.u, self.kind, self.wall_velocity, *self._grid(), self.rho0, self.p_ref, self.gamma,
            self.gravity, self.flip_axis, self.flip_at, self.rho, self.p, self.u_wall])
        wp.launch(k.forces, dim=n, device=device, inputs=[
            self.x, self.u, self.transport, self.u_wall, self.rho, self.p, self.mass, self.kind, *self._grid(),
            self.eta, self.p_background, self.alpha, self.c0, self.gravity, self.flip_axis, self.flip_at, self.dudt,
            self.dvdt])

    def step(self, dt: float) -> None:
        """Advance by dt (kick-drift-kick): half kick and drift, new forces, half kick."""
        if dt != self._graph_dt:
            self._graph, self._graph_dt = self._capture(dt), dt
        wp.capture_launch(self._graph)

    def _capture(self, dt: float) -> wp.Graph:
        k, n, device = self.k, len(self.x), self.device
        for kernel in (k.link, sort_cells, k.density, k.continuity, k.walls, k.forces, k.kick_drift, k.kick):
            wp.load_module(kernel.module, device=device)  # compiled outside the capture
        with wp.ScopedCapture(device=device, force_module_load=False) as capture:
            wp.launch(k.kick_drift, dim=n, device=device, inputs=[
                self.x, self.u, self.transport, self.dudt, self.dvdt, self.kind, self.rho, dt, self.lower,
                self.length, self.periodic3, self.rho_old])
            self._accelerations(dt)
            wp.launch(k.kick, dim=n, device=device, inputs=[self.u, self.dudt, self.kind, dt])
        return capture.graph

    def set_velocities(self, u: np.ndarray) -> None:
        """Replace the fluid's velocities (walls keep theirs) and recompute the forces for the next kick."""
        fluid = (self.kind.numpy() == FLUID)[:, None]
        u = np.where(fluid, np.asarray(u, np.float32), self.u.numpy())
        self.u.assign(u)
        self.transport.assign(u)
        self._accelerations(0.0)

    def positions(self) -> np.ndarray:
        return self.x.numpy()

    def velocities(self) -> np.ndarray:
        return self.u.numpy()

    def densities(self) -> np.ndarray:
        return self.rho.numpy()

    def pressures(self) -> np.ndarray:
        return self.p.numpy()

    def masses(self) -> np.ndarray:
        return self.mass.numpy()


def time_step(dx: float, sound_speed: float, max_speed: float, kinematic_viscosity: float,
              gravity: float) -> float:
    """Largest stable step (Adami 2013, eqs. 19-21, with h = dx): 0.25 h / (c0 + U) (CFL),
    0.125 h^2 / nu (viscous) and 0.25 sqrt(h / |g|) (body force)."""
    dt = 0.25 * dx / (sound_speed + max_speed)
    if kinematic_viscosity > 0:
        dt = min(dt, 0.125 * dx * dx / kinematic_viscosity)
    if gravity > 0:
        dt = min(dt, 0.25 * math.sqrt(dx / gravity))
    return dt
