"""Materials: physical parameters with lab-scale defaults, and their stress as Warp functions.

Every material maps the deformation gradient F (after the MLS-MPM update F <- (I + dt C) F) and
the affine velocity C to a return-mapped F and the Kirchhoff stress tau = J sigma that P2G
scatters (Hu et al. 2018, eq. 16-18). Water keeps only the volume ratio J; sand and goop use the
Hencky (logarithmic) strain on the SVD of F, the model of Klar et al. 2016, section 4.
"""


import math
from dataclasses import dataclass

import numpy as np
import warp as wp

from gnsim.dataset import PARTICLE_TYPES

# wp.constant: the stress functions branch on these names, not on bare numbers.
WATER, SAND, GOOP = wp.constant(0), wp.constant(1), wp.constant(2)
MATERIAL_IDS = {"water": WATER, "sand": SAND, "goop": GOOP}
PARTICLE_TYPE = {name: i for i, name in PARTICLE_TYPES.items() if name in MATERIAL_IDS}  # GNS ids

# Defaults suited to lab-scale scenes (centimetres to metres, flow speeds up to ~5 m/s).
DEFAULTS: dict[str, dict[str, float]] = {
    # Weakly compressible water: K = 2 MPa (1/1000 of real water) gives a sound speed of 45 m/s,
    # ten times the speed of a 1 m free fall, so density varies by ~1% (Monaghan 1994).
    "water": {"density": 1000.0, "bulk_modulus": 2.0e6, "viscosity": 0.0},
    # Dry sand after Klar et al. 2016 (E = 0.35 MPa, nu = 0.3), bulk density of packed quartz
    # sand (grain 2650 kg/m^3 x packing 0.6), friction angle typical of dry sand (30-35 deg).
    "sand": {"density": 1600.0, "youngs_modulus": 3.5e5, "poisson_ratio": 0.3,
             "friction_angle": 32.0, "cohesion": 0.0},
    # Goop: a soft elastoplastic jelly (von Mises): it rests without yielding under its own
    # weight up to ~0.8 m tall (rho g h / 2 < yield_stress), and a drop of a metre squashes it
    # into a lump that keeps its thickness (softer or weaker goop splashes into sheets).
    "goop": {"density": 1000.0, "youngs_modulus": 1.0e5, "poisson_ratio": 0.3,
             "yield_stress": 4.0e3},
}


@wp.struct
class Material:
    """Constants one material slot hands to the stress functions (SI units)."""

    kind: int  # WATER, SAND or GOOP
    bulk_modulus: float  # water: K (Pa)
    viscosity: float  # water: dynamic viscosity (Pa s)
    mu: float  # Lame shear modulus (Pa)
    lam: float  # Lame first parameter (Pa)
    friction_alpha: float  # Drucker-Prager alpha (Klar et al. 2016, eq. 27)
    tension_trace: float  # tr(Hencky strain) at the apex of the cohesive cone
    yield_stress: float  # goop: von Mises yield stress (Pa)


@dataclass(frozen=True)
class MaterialParams:
    """One block's material: its name and the full parameter set after defaults."""

    name: str
    params: dict[str, float]

    @property
    def density(self) -> float:
        return self.params["density"]

    def wave_speed(self) -> float:
        """Fastest elastic wave (m/s): sqrt(K/rho) for water, P-wave sqrt((lam+2mu)/rho) for solids."""
        if self.name == "water":
            return math.sqrt(self.params["bulk_modulus"] / self.density)
        mu, lam = lame(self.params)
        return math.sqrt((lam + 2 * mu) / self.density)

    def to_warp(self, dim: int) -> Material:
        m = Material()
        m.kind = MATERIAL_IDS[self.name]
        p = self.params
        m.bulk_modulus = p.get("bulk_modulus", 0.0)
        m.viscosity = p.get("viscosity", 0.0)
        m.mu, m.lam = lame(p) if "youngs_modulus" in p else (0.0, 0.0)
        m.friction_alpha, m.tension_trace = 0.0, 0.0
        if self.name == "sand":
            phi = math.radians(p["friction_angle"])
            # 3D: Klar et al. 2016, eq. 27, the Drucker-Prager cone inscribed in Mohr-Coulomb.
            # 2D (plane): the cone ||s|| <= -alpha tr(tau) is Mohr-Coulomb itself when
            # alpha = sin(phi) / sqrt(2) (Mohr's circle: radius <= sin(phi) x centre).
            m.friction_alpha = (math.sin(phi) / math.sqrt(2) if dim == 2 else
                                math.sqrt(2 / 3) * 2 * math.sin(phi) / (3 - math.sin(phi)))
            # Cohesion c moves the apex to the mean stress c cot(phi) in tension; in Hencky strain
            # that is tr(eps) = dim c cot(phi) / (dim lam + 2 mu).
            m.tension_trace = dim * p["cohesion"] / math.tan(phi) / (dim * m.lam + 2 * m.mu)
        m.yield_stress = p.get("yield_stress", 0.0)
        return m


def lame(params: dict[str, float]) -> tuple[float, float]:
    """(mu, lambda) from Young's modulus and Poisson's ratio."""
    E, nu = params["youngs_modulus"], params["poisson_ratio"]
    return E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))


def make_material(name: str, params: dict | None = None, where: str = "block") -> MaterialParams:
    """Fill a material's missing parameters from DEFAULTS; errors name the key under `where`."""
    if not isinstance(name, str) or name not in DEFAULTS:
        raise ValueError(f"{where}.material: unknown material {name!r} (known: {', '.join(DEFAULTS)})")
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULTS[name]))
    if unknown:
        raise ValueError(f"{where}.params: unknown key {unknown[0]!r} for {name} "
                         f"(known: {', '.join(DEFAULTS[name])})")
    full = {**DEFAULTS[name]}
    for key, value in params.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise ValueError(f"{where}.params.{key}: must be a number, got {value!r}")
        full[key] = float(value)
    for key in ("density", "bulk_modulus", "youngs_modulus"):
        if key in full and full[key] <= 0:
            raise ValueError(f"{where}.params.{key}: must be positive, got {full[key]}")
    if "poisson_ratio" in full and not 0 <= full["poisson_ratio"] < 0.5:
        raise ValueError(f"{where}.params.poisson_ratio: must be in [0, 0.5), got {full['poisson_ratio']}")
    if "friction_angle" in full and not 0 < full["friction_angle"] < 90:
        raise ValueError(f"{where}.params.friction_angle: must be in (0, 90) degrees, got {full['friction_angle']}")
    for key in ("viscosity", "cohesion", "yield_stress"):
        if key in full and full[key] < 0:
            raise ValueError(f"{where}.params.{key}: must be >= 0, got {full[key]}")
    return MaterialParams(name, full)


def stress_functions(dim: int):
    """The Warp function `stress(material, F, C, volume_gain) -> (F, tau, volume_gain)` for vectors
    and matrices of `dim`; only sand changes the volume gain (its volume correction)."""
    vec = wp.types.vector(dim, float)
    mat = wp.types.matrix((dim, dim), float)
    inverse_dim = 1.0 / float(dim)

    @wp.func
    def svd(F: mat):
        U = mat()
        sigma = vec()
        V = mat()
        if wp.static(dim == 2):
            wp.svd2(F, U, sigma, V)
        else:
            wp.svd3(F, U, sigma, V)
        return U, sigma, V

    @wp.func
    def diagonal(values: vec):
        D = mat()
        for d in range(dim):
            D[d, d] = values[d]
        return D

    @wp.func
    def water(m: Material, F: mat, C: mat):
        # Energy K/2 (J-1)^2 gives tau = K J (J-1) I; Newtonian viscosity adds 2 eta J sym(grad v)
        # with grad v ~ C (APIC). F keeps only its volume: fluids have no shear memory. A free
        # surface carries no tension, so an expanding particle forgets its expansion (J <= 1);
        # otherwise thin sheets would hang from walls as if water were glue.
        J = wp.min(wp.determinant(F), 1.0)
        tau = m.bulk_modulus * J * (J - 1.0) * wp.identity(n=dim, dtype=float)
        tau += m.viscosity * J * (C + wp.transpose(C))
        return wp.pow(J, inverse_dim) * wp.identity(n=dim, dtype=float), tau

    @wp.func
    def project_sand(m: Material, epsilon: vec, volume_gain: float):
        # Klar et al. 2016, Algorithm 2 (sand projection), with the cone's apex moved to
        # tr(eps) = tension_trace by the cohesion, and the volume correction of Tampubolon et al.
        # 2017: the log volume a particle gained past the apex (volume_gain) is owed back before it
        # bears pressure again, so that sand pulled apart re-packs to its bulk density instead of
        # resting as loose as it flew. Returns the strain and the volume still owed.
        epsilon = epsilon + volume_gain * inverse_dim * vec(1.0)
        trace = float(0.0)  # noqa: UP018 - a Warp variable, not a constant
        for d in range(dim):
            trace += epsilon[d]
        trace -= m.tension_trace
        deviator = epsilon - (trace + m.tension_trace) * inverse_dim * vec(1.0)
        deviator_norm = wp.length(deviator)
        if trace >= 0.0:
            return m.tension_trace * inverse_dim * vec(1.0), trace  # tension beyond the apex
        if deviator_norm < 1.0e-12:
            return epsilon, 0.0  # pure compression: elastic
        delta_gamma = deviator_norm + (float(dim) * m.lam + 2.0 * m.mu) / (2.0 * m.mu) * trace * m.friction_alpha
        if delta_gamma <= 0.0:
            return epsilon, 0.0  # inside the cone: elastic
        return epsilon - delta_gamma / deviator_norm * deviator, 0.0

    @wp.func
    def project_goop(m: Material, epsilon: vec):
        # von Mises: the Kirchhoff deviator ||2 mu eps_hat|| may not exceed sqrt(2/3) yield_stress.
        trace = float(0.0)  # noqa: UP018 - a Warp variable, not a constant
        for d in range(dim):
            trace += epsilon[d]
        deviator = epsilon - trace * inverse_dim * vec(1.0)
        limit = wp.sqrt(2.0 / 3.0) * m.yield_stress / (2.0 * m.mu)
        deviator_norm = wp.length(deviator)
        if deviator_norm <= limit:
            return epsilon
        return trace * inverse_dim * vec(1.0) + deviator * (limit / deviator_norm)

    @wp.func
    def hencky(m: Material, F: mat, volume_gain: float):
        # Return mapping on the principal stretches, then the St. Venant-Kirchhoff stress in
        # Hencky strain: tau = U (2 mu eps + lam tr(eps) I) U^T (Klar et al. 2016, eq. 26).
        U, sigma, V = svd(F)
        epsilon = vec()
        for d in range(dim):
            epsilon[d] = wp.log(wp.max(wp.abs(sigma[d]), 1.0e-4))
        if m.kind == SAND:
            epsilon, volume_gain = project_sand(m, epsilon, volume_gain)
        else:
            epsilon = project_goop(m, epsilon)
        stretch = vec()
        trace = float(0.0)  # noqa: UP018 - a Warp variable, not a constant
        for d in range(dim):
            stretch[d] = wp.exp(epsilon[d])
            trace += epsilon[d]
        F_elastic = U * diagonal(stretch) * wp.transpose(V)
        tau = U * diagonal(2.0 * m.mu * epsilon + m.lam * trace * vec(1.0)) * wp.transpose(U)
        return F_elastic, tau, volume_gain

    @wp.func
    def stress(m: Material, F: mat, C: mat, volume_gain: float):
        if m.kind == WATER:
            F_new, tau = water(m, F, C)
            return F_new, tau, volume_gain
        return hencky(m, F, volume_gain)

    return stress
