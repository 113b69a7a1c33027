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

Kernels take the particles (Fluid), the cell lists (Cells) and the constants (Params) as Warp
structs, and read their fields by name.
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
    """The step's structs and kernels for `dim` = 2 or 3. Every kernel takes the Fluid, the Cells and
    the Params it reads (and dt), so no launch can pass them out of order."""
    vec = wp.types.vector(dim, float)
    stencil = 3**dim
    options = {"max_unroll": stencil, "enable_backward": False}
    # Quintic spline normalisation (Morris, Fox & Zhu 1997): 7/(478 pi h^2) in 2D, 3/(359 pi h^3) in 3D.
    norm = 7.0 / (478.0 * math.pi) if dim == 2 else 3.0 / (359.0 * math.pi)

    @wp.struct
    class Fluid:
        """Every particle, fluid then wall: its state and its rates of change."""

        x: wp.array(dtype=vec)
        u: wp.array(dtype=vec)  # momentum velocity
        transport: wp.array(dtype=vec)  # transport velocity u~, which moves the particle
        u_wall: wp.array(dtype=vec)  # what the viscous term reads: a wall's 2 u_w - <u_f>, else u
        wall_velocity: wp.array(dtype=vec)  # a wall's prescribed velocity u_w
        kind: wp.array(dtype=int)  # FLUID or WALL
        mass: wp.array(dtype=float)
        rho: wp.array(dtype=float)
        rho_old: wp.array(dtype=float)  # the previous step's density, for the continuity equation
        p: wp.array(dtype=float)
        dudt: wp.array(dtype=vec)
        dvdt: wp.array(dtype=vec)  # the background-pressure acceleration of the transport velocity

    @wp.struct
    class Cells:
        """The neighbours' cell lists over the particles' extent, and the domain's periodic box."""

        head: wp.array(dtype=int)  # each cell's first particle
        next: wp.array(dtype=int)  # the next particle in the same cell
        origin: vec  # corner of cell 0
        inv_size: vec  # 1 / cell size per axis
        count: wp.vec3i  # cells per axis
        periodic: wp.vec3i
        lower: vec  # the domain, whose periodic axes wrap
        length: vec

    @wp.struct
    class Params:
        """The constants of the scheme and the scene."""

        h: float
        rho0: float
        c0: float
        p_ref: float  # of the Tait equation p = p_ref ((rho / rho0)^gamma - 1)
        gamma: float
        eta: float  # dynamic viscosity
        p_background: float
        alpha: float  # Monaghan's artificial viscosity
        gravity: vec
        flip_axis: int  # gravity reverses where x[flip_axis] > flip_at; -1: nowhere
        flip_at: float

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
    def cell_coords(x: vec, cells: Cells):
        c = wp.vec3i(0)
        for d in range(dim):
            k = int(wp.floor((x[d] - cells.origin[d]) * cells.inv_size[d]))
            if cells.periodic[d] != 0:
                k = ((k % cells.count[d]) + cells.count[d]) % cells.count[d]
            else:
                k = wp.clamp(k, 0, cells.count[d] - 1)
            c[d] = k
        return c

    @wp.func
    def flat(c: wp.vec3i, count: wp.vec3i):
        return (c[0] * count[1] + c[1]) * count[2] + c[2]

    @wp.func
    def first_in_cell(c: wp.vec3i, s: int, cells: Cells):
        # The first particle of cell s of the 3^dim block around c (digit d of s in base 3 is the
        # offset + 1 along axis d), wrapped on periodic axes; its list goes on through `next`.
        # -1 for an empty cell or one beyond a non-periodic edge.
        n = wp.vec3i(0)
        code = s
        inside = True
        for d in range(dim):
            k = c[d] + code % 3 - 1
            code = code // 3
            if cells.periodic[d] != 0:
                k = (k + cells.count[d]) % cells.count[d]
            elif k < 0 or k >= cells.count[d]:
                inside = False
            n[d] = k
        j = int(-1)  # noqa: UP018, RUF046
        if inside:
            j = cells.head[flat(n, cells.count)]
        return j

    @wp.func
    def separation(xi: vec, xj: vec, cells: Cells):
        # x_i - x_j, minimum image on periodic axes.
        r = xi - xj
        for d in range(dim):
            if cells.periodic[d] != 0:
                r[d] = r[d] - cells.length[d] * wp.round(r[d] / cells.length[d])
        return r

    @wp.func
    def body_force(x: vec, params: Params):
        # The scene's gravity, reversed where x[flip_axis] > flip_at (a reverse-Poiseuille flow's
        # two opposite streams); flip_axis < 0: gravity everywhere, the same bytes as without it.
        g = params.gravity
        if params.flip_axis >= 0:  # noqa: SIM102 (Warp's `and` does not short-circuit: x[-1] would be read)
            if x[params.flip_axis] > params.flip_at:
                g = -params.gravity
        return g

    @wp.func
    def tait(rho: float, params: Params):
        return params.p_ref * (wp.pow(rho / params.rho0, params.gamma) - 1.0)

    @wp.kernel(module="unique", module_options=options)
    def link(fluid: Fluid, cells: Cells):
        p = wp.tid()
        cell = flat(cell_coords(fluid.x[p], cells), cells.count)
        cells.next[p] = wp.atomic_exch(cells.head, cell, p)

    @wp.kernel(module="unique", module_options=options)
    def density(fluid: Fluid, cells: Cells, params: Params):
        # Density by summation over fluid and wall neighbours, rho_i = m_i sum_j W_ij, then the
        # Tait equation of state. Wall values are set by `walls`.
        i = wp.tid()
        if fluid.kind[i] != FLUID:
            return
        x = fluid.x
        c = cell_coords(x[i], cells)
        sigma = float(0.0)  # noqa: UP018
        for s in range(stencil):
            j = first_in_cell(c, s, cells)
            while j >= 0:
                sigma += w_quintic(wp.length(separation(x[i], x[j], cells)), params.h)
                j = cells.next[j]
        fluid.rho[i] = fluid.mass[i] * sigma
        fluid.p[i] = tait(fluid.rho[i], params)

    @wp.kernel(module="unique", module_options=options)
    def continuity(fluid: Fluid, cells: Cells, params: Params, dt: float):
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
        if fluid.kind[i] != FLUID:
            return
        x, u, rho_old, h = fluid.x, fluid.u, fluid.rho_old, params.h
        c = cell_coords(x[i], cells)
        rate = float(0.0)  # noqa: UP018
        for s in range(stencil):
            j = first_in_cell(c, s, cells)
            while j >= 0:
                if j != i:
                    r_ij = separation(x[i], x[j], cells)
                    r = wp.length(r_ij)
                    if r < SUPPORT * h and r > 0.0:
                        u_j = u[j]
                        if fluid.kind[j] != FLUID:
                            u_j = fluid.wall_velocity[j]
                        rate += fluid.mass[j] / rho_old[j] * wp.dot(u[i] - u_j, (dw_quintic(r, h) / r) * r_ij)
                j = cells.next[j]
        fluid.rho[i] = rho_old[i] + dt * (rho_old[i] * rate)  # drho/dt = rho_i * rate
        fluid.p[i] = tait(fluid.rho[i], params)

    @wp.kernel(module="unique", module_options=options)
    def walls(fluid: Fluid, cells: Cells, params: Params):
        # Adami 2012, eqs. 22 and 27: a wall particle takes the Shepard average of its fluid
        # neighbours' pressure plus the hydrostatic part rho (g - a_w) . (x_w - x_f) (walls do
        # not accelerate here), its density from the inverse equation of state, and for the
        # viscous term the velocity 2 u_w - <u_f>, which makes the wall no-slip. The body force
        # is the one at the wall particle (reversed beyond a gravity-reversal plane).
        i = wp.tid()
        x, u, rho, p = fluid.x, fluid.u, fluid.rho, fluid.p
        if fluid.kind[i] != WALL:
            fluid.u_wall[i] = u[i]
            return
        g_w = body_force(x[i], params)
        c = cell_coords(x[i], cells)
        weight = float(0.0)  # noqa: UP018
        pressure = float(0.0)  # noqa: UP018
        velocity = vec()
        for s in range(stencil):
            j = first_in_cell(c, s, cells)
            while j >= 0:
                if fluid.kind[j] == FLUID:
                    r = separation(x[i], x[j], cells)
                    w = w_quintic(wp.length(r), params.h)
                    weight += w
                    pressure += w * (p[j] + rho[j] * wp.dot(g_w, r))
                    velocity += w * u[j]
                j = cells.next[j]
        p_w = float(0.0)  # noqa: UP018
        mean_u = vec()
        if weight > 0.0:
            p_w = pressure / weight
            mean_u = velocity / weight
        p[i] = p_w
        rho[i] = params.rho0 * wp.pow(wp.max(p_w / params.p_ref + 1.0, 1.0e-3), 1.0 / params.gamma)
        fluid.u_wall[i] = 2.0 * fluid.wall_velocity[i] - mean_u

    @wp.kernel(module="unique", module_options=options)
    def forces(fluid: Fluid, cells: Cells, params: Params):
        # Adami 2013, eqs. 8 and 13: pressure with the density-weighted inter-particle pressure,
        # laminar viscosity, the transport stress A = rho u (u~ - u), and the background-pressure
        # acceleration that shifts positions (dvdt); with alpha > 0, Monaghan's artificial
        # viscosity between fluid particles in jax-sph's form (no switch on approach):
        # m_j alpha h c (u_ij . r_ij) grad W_ij / (rho_ij (r^2 + 0.01 h^2)), rho_ij the mean density.
        i = wp.tid()
        if fluid.kind[i] != FLUID:
            return
        x, u, transport, rho, p, mass = fluid.x, fluid.u, fluid.transport, fluid.rho, fluid.p, fluid.mass
        h, alpha = params.h, params.alpha
        c = cell_coords(x[i], cells)
        v_i = mass[i] / rho[i]
        shift_i = transport[i] - u[i]
        a = vec()
        b = vec()
        artificial = vec()
        for s in range(stencil):
            j = first_in_cell(c, s, cells)
            while j >= 0:
                if j != i:
                    r_ij = separation(x[i], x[j], cells)
                    r = wp.length(r_ij)
                    if r < SUPPORT * h and r > 0.0:
                        dw = dw_quintic(r, h)
                        grad = (dw / r) * r_ij
                        v_j = mass[j] / rho[j]
                        volumes = v_i * v_i + v_j * v_j
                        p_ij = (rho[j] * p[i] + rho[i] * p[j]) / (rho[i] + rho[j])
                        a += -volumes * p_ij * grad
                        a += volumes * params.eta * (u[i] - fluid.u_wall[j]) * (dw / r)
                        # A_i . grad + A_j . grad, with A = rho u (u~ - u); zero for walls.
                        stress = rho[i] * u[i] * wp.dot(shift_i, grad)
                        if fluid.kind[j] == FLUID:
                            stress += rho[j] * u[j] * wp.dot(transport[j] - u[j], grad)
                        a += 0.5 * volumes * stress
                        b += -volumes * params.p_background * grad
                        if alpha > 0.0 and fluid.kind[j] == FLUID:
                            mu = alpha * h * params.c0 * wp.dot(u[i] - u[j], r_ij) / (r * r + 0.01 * h * h)
                            artificial += (mass[j] * mu / (0.5 * (rho[i] + rho[j]))) * grad
                j = cells.next[j]
        fluid.dudt[i] = a / mass[i] + artificial + body_force(x[i], params)
        fluid.dvdt[i] = b / mass[i]

    @wp.kernel(module="unique", module_options=options)
    def kick_drift(fluid: Fluid, cells: Cells, dt: float):
        # Half a kick of the momentum velocity, the transport velocity from it, a full drift
        # with the transport velocity, then periodic wrapping into [lower, lower + length).
        # The densities are copied for the continuity equation to read.
        i = wp.tid()
        fluid.rho_old[i] = fluid.rho[i]
        if fluid.kind[i] != FLUID:
            return
        u, transport, lower, length = fluid.u, fluid.transport, cells.lower, cells.length
        u[i] = u[i] + 0.5 * dt * fluid.dudt[i]
        transport[i] = u[i] + 0.5 * dt * fluid.dvdt[i]
        y = fluid.x[i] + dt * transport[i]
        for d in range(dim):
            if cells.periodic[d] != 0:
                t = y[d] - lower[d]
                t = t - length[d] * wp.floor(t / length[d])
                if t >= length[d]:  # float rounding of a point just below lower
                    t = 0.0
                y[d] = lower[d] + t
        fluid.x[i] = y

    @wp.kernel(module="unique", module_options=options)
    def kick(fluid: Fluid, dt: float):
        i = wp.tid()
        if fluid.kind[i] == FLUID:
            fluid.u[i] = fluid.u[i] + 0.5 * dt * fluid.dudt[i]

    return SimpleNamespace(Fluid=Fluid, Cells=Cells, Params=Params, link=link, density=density,
                           continuity=continuity, walls=walls, forces=forces, kick_drift=kick_drift, kick=kick,
                           vec=vec)


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
        self.k = k = kernels(dim)
        if density_evolution not in ("summation", "continuity"):
            raise ValueError(f"density_evolution: 'summation' or 'continuity', got {density_evolution!r}")
        self.continuity = density_evolution == "continuity"

        h = float(dx)  # jax-sph's choice: h = dx, so 3h reaches 3 particle spacings
        rho0, c0, gamma = float(density), float(sound_speed), float(gamma)
        p_ref = rho0 * c0**2 / gamma
        self.params = params = k.Params()
        params.h, params.rho0, params.c0, params.p_ref, params.gamma = h, rho0, c0, p_ref, gamma
        params.eta = float(viscosity)
        # The background pressure of the transport velocity, in units of rho0 c0^2 / gamma: at 1
        # (jax-sph's) a Taylor-Green vortex started on a lattice decays 1.15x too fast, in jax-sph
        # alike (benchmarks/sph.py); at 5 it decays as it should.
        params.p_background = background_pressure_factor * p_ref if transport_velocity else 0.0
        params.alpha = float(artificial_viscosity)
        params.gravity = k.vec(*np.asarray(gravity, float))
        params.flip_axis, params.flip_at = (int(gravity_reversal[0]), float(gravity_reversal[1])) \
            if gravity_reversal is not None else (-1, 0.0)

        lower, upper = np.asarray(lower, float), np.asarray(upper, float)
        periodic = [bool(t) for t in periodic]
        # Cells at least one support wide over the particles' extent (walls included).
        reach = SUPPORT * h
        low = np.where(periodic, lower, np.minimum(lower, x.min(axis=0)) - reach)
        high = np.where(periodic, upper, np.maximum(upper, x.max(axis=0)) + reach)
        # The 1e-6 lets 0.9 / 0.3 make 3 cells, as the scene's check allows; a pair that it puts two
        # cells apart is at most 1e-6 short of the support, where the kernel is below 1e-30.
        count = np.maximum(np.floor((high - low) / reach * (1 + 1e-6)).astype(int), 1)
        if any(p and c < 3 for p, c in zip(periodic, count)):
            raise ValueError("a periodic side must be at least 3 kernel supports (9 particle spacings) long")
        self.num_cells = int(np.prod(count))
        n = len(x)
        self.cells = cells = k.Cells()
        cells.head = wp.empty(self.num_cells, dtype=int, device=device)
        cells.next = wp.empty(n, dtype=int, device=device)
        cells.origin = k.vec(*low)
        cells.inv_size = k.vec(*(count / (high - low)))
        cells.count = wp.vec3i(*count.tolist(), *[1] * (3 - dim))
        cells.periodic = wp.vec3i(*[int(t) for t in periodic], *[0] * (3 - dim))
        cells.lower, cells.length = k.vec(*lower), k.vec(*(upper - lower))

        as_array = lambda a, dtype: wp.array(np.ascontiguousarray(a, dtype=np.float32 if dtype is not int else np.int32),
                                             dtype=dtype, device=device)
        self.fluid = fluid = k.Fluid()
        fluid.x = as_array(x, k.vec)
        fluid.u = as_array(u * (kind == FLUID)[:, None], k.vec)
        fluid.transport = as_array(u * (kind == FLUID)[:, None], k.vec)
        fluid.u_wall = wp.zeros(n, dtype=k.vec, device=device)
        fluid.wall_velocity = as_array(wall_velocity, k.vec)
        fluid.kind = as_array(kind, int)
        fluid.mass = as_array(np.full(n, rho0 * dx**dim), float)
        fluid.rho = as_array(np.full(n, rho0), float)
        fluid.rho_old = as_array(np.full(n, rho0), float)
        fluid.p = wp.zeros(n, dtype=float, device=device)
        fluid.dudt = wp.zeros(n, dtype=k.vec, device=device)
        fluid.dvdt = wp.zeros(n, dtype=k.vec, device=device)
        self._graph, self._graph_dt = None, None
        self._accelerations(0.0)  # the first half kick needs the forces at t = 0

    def _accelerations(self, dt: float) -> None:
        # Neighbour lists, density and pressure (under continuity, the density step of length dt),
        # the wall condition, then the forces.
        k, device, fluid, cells, params = self.k, self.device, self.fluid, self.cells, self.params
        n = len(fluid.x)
        cells.head.fill_(-1)
        wp.launch(k.link, dim=n, device=device, inputs=[fluid, cells])
        wp.launch(sort_cells, dim=self.num_cells, device=device, inputs=[cells.head, cells.next])
        if self.continuity:
            wp.launch(k.continuity, dim=n, device=device, inputs=[fluid, cells, params, dt])
        else:
            wp.launch(k.density, dim=n, device=device, inputs=[fluid, cells, params])
        wp.launch(k.walls, dim=n, device=device, inputs=[fluid, cells, params])
        wp.launch(k.forces, dim=n, device=device, inputs=[fluid, cells, params])

    def step(self, dt: float) -> None:
        """Advance by dt (kick-drift-kick): half kick and drift, new forces, half kick."""
        if dt != self._graph_dt:
            self._graph, self._graph_dt = self._capture(dt), dt
        wp.capture_launch(self._graph)

    def _capture(self, dt: float) -> wp.Graph:
        k, device, fluid = self.k, self.device, self.fluid
        n = len(fluid.x)
        for kernel in (k.link, sort_cells, k.density, k.continuity, k.walls, k.forces, k.kick_drift, k.kick):
            wp.load_module(kernel.module, device=device)  # compiled outside the capture
        with wp.ScopedCapture(device=device, force_module_load=False) as capture:
            wp.launch(k.kick_drift, dim=n, device=device, inputs=[fluid, self.cells, dt])
            self._accelerations(dt)
            wp.launch(k.kick, dim=n, device=device, inputs=[fluid, dt])
        return capture.graph

    def set_velocities(self, u: np.ndarray) -> None:
        """Replace the fluid's velocities (walls keep theirs) and recompute the forces for the next kick."""
        fluid = (self.fluid.kind.numpy() == FLUID)[:, None]
        u = np.where(fluid, np.asarray(u, np.float32), self.fluid.u.numpy())
        self.fluid.u.assign(u)
        self.fluid.transport.assign(u)
        self._accelerations(0.0)

    def positions(self) -> np.ndarray:
        return self.fluid.x.numpy()

    def velocities(self) -> np.ndarray:
        return self.fluid.u.numpy()

    def densities(self) -> np.ndarray:
        return self.fluid.rho.numpy()

    def pressures(self) -> np.ndarray:
        return self.fluid.p.numpy()

    def masses(self) -> np.ndarray:
        return self.fluid.mass.numpy()


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
