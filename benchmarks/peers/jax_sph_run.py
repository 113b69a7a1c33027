"""jax-sph's own WCSPH on one of its cases, timed after compilation; one JSON line.

Runs in the environment `benchmarks/peers/jax_sph.sh` builds, called by `python -m benchmarks.sph` as
`python jax_sph_run.py --cases DIR --case tgv --steps S --every K [--set key=value ...]`. The setup
is jax_sph.simulate's (case, WCSPH, neighbour list, semi-implicit Euler), without its file output:
the kinetic energy of the fluid is recorded every K steps instead.
"""

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, help="jax-sph's cases/ folder")
    parser.add_argument("--case", required=True, help="a case's name there, e.g. tgv or db")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], help="a config override, key=value")
    args = parser.parse_args()

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from jax import config, jit
    from jax_sph import partition
    from jax_sph.case_setup import load_case
    from jax_sph.defaults import defaults
    from jax_sph.integrator import si_euler
    from jax_sph.jax_md.partition import Sparse
    from jax_sph.solver import WCSPH
    from jax_sph.utils import Tag
    from omegaconf import OmegaConf

    path = os.path.join(args.cases, f"{args.case}.yaml")
    case_cfg = OmegaConf.load(path)
    del case_cfg["extends"]  # every case extends JAX_SPH_DEFAULTS
    cfg = OmegaConf.merge(defaults, case_cfg, OmegaConf.from_dotlist(args.set))
    cfg.config = path
    if cfg.dtype == "float64":
        config.update("jax_enable_x64", True)

    case = load_case(args.cases, cfg.case.source)(cfg)
    cfg, box_size, state, g_ext_fn, bc_fn, nw_fn, eos_fn, _key, displacement_fn, shift_fn = case.initialize()
    solver = WCSPH(displacement_fn, eos_fn, g_ext_fn, cfg.case.dx, cfg.case.dim, cfg.solver.dt, cfg.case.c_ref,
                   cfg.solver.eta_limiter, cfg.solver.name, cfg.kernel.name, cfg.solver.is_bc_trick,
                   cfg.solver.density_evolution, cfg.solver.artificial_alpha, cfg.solver.free_slip,
                   cfg.solver.density_renormalize, cfg.solver.heat_conduction)
    neighbor_fn = partition.neighbor_list(
        displacement_fn, box_size, r_cutoff=solver._kernel_fn.cutoff, backend=cfg.nl.backend,
        capacity_multiplier=1.25, mask_self=False, format=Sparse, num_particles_max=state["r"].shape[0],
        num_partitions=cfg.nl.num_partitions, pbc=[bool(p) for p in cfg.case.pbc])
    count = int((state["tag"] != Tag.PAD_VALUE).sum())
    neighbors = neighbor_fn.allocate(state["r"], num_particles=count)
    advance = jit(si_euler(cfg.solver.tvf, solver.forward_wrapper(), shift_fn, bc_fn, nw_fn))
    fluid = state["tag"] == Tag.FLUID

    def kinetic_energy(s) -> float:
        return float(0.5 * (s["mass"] * (s["u"] ** 2).sum(axis=1) * fluid).sum())

    compiled = advance(0.0, state, neighbors)  # compile, and the accelerations at t = 0
    compiled[0]["u"].block_until_ready()
    energy, overflows, timed = [kinetic_energy(state)], 0, 0.0
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        new_state, new_neighbors = advance(cfg.solver.dt, state, neighbors)
        if new_neighbors.did_buffer_overflow:  # as jax_sph.simulate: grow the list, redo the step
            overflows += 1
            neighbors = neighbor_fn.allocate(state["r"], num_particles=count)
            new_state, new_neighbors = advance(cfg.solver.dt, state, neighbors)
        state, neighbors = new_state, new_neighbors
        state["u"].block_until_ready()
        timed += time.perf_counter() - start
        if step % args.every == 0:
            energy.append(kinetic_energy(state))
    print(json.dumps({"particles": count, "fluid": int(fluid.sum()), "steps": args.steps, "dt": cfg.solver.dt,
                      "seconds": timed, "particle_steps_per_s": count * args.steps / timed,
                      "kinetic_energy": energy, "dtype": cfg.dtype, "neighbour_reallocations": overflows,
                      "tvf": cfg.solver.tvf, "p_bg_factor": cfg.eos.p_bg_factor}))


if __name__ == "__main__":
    main()
