"""Training throughput of the `paper` GNS on a WaterDrop-sized sample, against geoelements/gns,
and of the `quick` preset's trainer on small `water`, against its settings at commit 49b60ed.

Prints one JSON line: training steps/s and particle-steps/s (batch 2, ~1.5k particles per
sample, ~20 neighbours, WaterDrop's box and R = 0.015), the FLOPs of one step (counted with
torch.utils.flop_counter), the achieved FLOP/s as a fraction of this machine's float32 matmul
throughput measured in the same run, and geoelements/gns timed on identical data through the
peer runner (`--peer-python`, `--peer-runner`), with the ratio. A step is what the trainer does
per batch: noise, radius graph, forward, loss, backward, Adam.

The `quick` figures time `training.train` itself (loader, steps, logging; no validation) on
`python -m simulators.generate water` for about `--quick-windows` windows, today's preset and
49b60ed's (batch 2, float32) interleaved twice, and report the better of each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from gnsim import DatasetWriter
from gnsim.dataset import WindowDataset, read_metadata
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig
from gnsim.strategies import add_training_noise
from simulators.generate import generate
from training.config import derived_from_data, load_config
from training.environment import native_bf16
from training.loss import one_step_loss
from training.train import train

BOUNDS = [[0.1, 0.9], [0.1, 0.9]]  # WaterDrop's
CONNECTIVITY_RADIUS = 0.015
FRAME_DT = 0.0025
PEER_PYTHON = os.environ.get("GNS_PEER_PYTHON")  # `bash benchmarks/peers/gns.sh` builds it
PEER_RUNNER = Path(__file__).with_name("peers") / "gns_train_step.py"


def water_block(seed: int, columns: int, rows: int, frames: int = 7) -> np.ndarray:
    """Positions [frames, N, 2] of a jittered water block in free fall, ~20 neighbours within R."""
    rng = np.random.default_rng(seed)
    spacing = 0.006  # pi R^2 / spacing^2 ~ 20 neighbours
    grid = np.stack(np.meshgrid(np.arange(columns), np.arange(rows), indexing="ij"), -1).reshape(
        -1, 2
    )
    start = np.array([0.15 + 0.3 * rng.random(), 0.3 + 0.2 * rng.random()])
    x0 = start + grid * spacing + rng.normal(0, 0.05 * spacing, grid.shape)
    velocity = rng.uniform(-1, 1, 2)
    t = np.arange(frames)[:, None, None] * FRAME_DT
    return (x0 + velocity * t + 0.5 * np.array([0.0, -9.81]) * t**2).astype(np.float32)


def write_sample(folder: Path, particles: int) -> tuple[list[np.ndarray], dict]:
    """Two 7-frame trajectories (one window each: a batch of 2), as a gnsim dataset and a gns .npz."""
    columns = int(np.sqrt(particles))
    rows = particles // columns
    trajectories = [water_block(seed, columns, rows) for seed in (0, 1)]
    with DatasetWriter(
        folder,
        dim=2,
        dt=FRAME_DT,
        bounds=BOUNDS,
        connectivity_radius=CONNECTIVITY_RADIUS,
        metadata={"simulator": "benchmarks.training.water_block"},
    ) as writer:
        for position in trajectories:
            writer.add("train", position, np.full(position.shape[1], 5))
    metadata = json.loads((folder / "metadata.json").read_text())
    # geoelements/gns reads {name: (positions [T, N, D], particle_type [N])} from train.npz.
    np.savez(
        folder / "train.npz",
        **{
            f"trajectory_{k}": np.array([position, np.full(position.shape[1], 5)], dtype=object)
            for k, position in enumerate(trajectories)
        },
    )
    return trajectories, metadata


def matmul_flops_per_s(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul throughput: best of `repeats` square products."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_gnsim(
    trajectories: list[np.ndarray], metadata: dict, device: torch.device, steps: int, warmup: int
) -> dict:
    config = load_config("paper")
    torch.manual_seed(0)
    simulator = LearnedSimulator(SimulatorConfig.from_dict(config), metadata).to(device)
    optimizer = torch.optim.Adam(simulator.parameters(), lr=config["learning_rate"])
    sequence = torch.cat([torch.from_numpy(p).transpose(0, 1) for p in trajectories]).to(device)
    particle_type = torch.full((len(sequence),), 5, device=device)
    batch = torch.cat([torch.full((p.shape[1],), k) for k, p in enumerate(trajectories)]).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    use_amp = device.type == "cuda" or native_bf16()  # as the trainer's amp=auto

    def step() -> torch.Tensor:
        position, target = add_training_noise(
            sequence[:, :-1], sequence[:, -1], particle_type, config["noise_std"], generator
        )
        edge_index = simulator.connectivity(position[:, -1], batch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            predicted = simulator(position, particle_type, edge_index)
        loss = one_step_loss(
            predicted.float(),
            simulator.normalized_acceleration_target(target, position),
            particle_type,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return edge_index

    for _ in range(warmup):
        edges = step().shape[1]
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {"seconds_per_step": seconds, "flops_per_step": flops, "edges_per_step": edges}


def measure_peer(
    python: str,
    runner: str,
    folder: Path,
    device: torch.device,
    steps: int,
    warmup: int,
    threads: int,
) -> dict:
    """geoelements/gns's training step on the same files, via its runner in its own venv."""
    if not python or not Path(python).is_file():
        return {"gns": None, "gns_reason": f"no geoelements/gns python (tried {python!r}): `bash "
                "benchmarks/peers/gns.sh` builds one and prints the path to pass as --peer-python"}
    command = [
        python,
        runner,
        "--data",
        str(folder),
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        "--device",
        device.type,
        "--threads",
        str(threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"gns": None, "gns_reason": f"runner failed (exit {result.returncode}): {tail}"}
    return {"gns": json.loads(lines[-1])}


# The throughput-setting keys of `quick` at commit 49b60ed, over today's preset.
QUICK_49B60ED = ["batch_size=2", "batch_particles=null", "amp=off", "num_workers=1", "threads=1"]
QUICK_TIMING = ["log_every=10", "validate_every=1000000", "checkpoint_every=1000000",
                "rollout_trajectories=0", "tensorboard=false"]


def measure_quick(data: Path, folder: Path, windows: int) -> dict:
    """Windows/s and particle-steps/s of the trainer on `data`: `quick` now and at 49b60ed."""
    mean_particles = WindowDataset(data).mean_particles()
    metadata = read_metadata(data)
    best: dict[str, float] = {}
    for repeat in range(2):
        for name, overrides in (("quick_49b60ed", QUICK_49B60ED), ("quick", [])):
            config = load_config("quick", [*overrides, *QUICK_TIMING])
            batch = {**config, **derived_from_data(config, metadata, mean_particles)}["batch_size"]
            run = folder / f"{name}-{repeat}"
            with contextlib.redirect_stderr(io.StringIO()):  # the trainer's progress bar and notes
                train({**config, "steps": max(30, windows // batch)}, data, run)
            rates = [json.loads(line)["samples_per_s"] for line in (run / "metrics.jsonl").open()]
            best[name] = max(best.get(name, 0.0), float(np.median(rates[1:])))  # the first warms up
    figures = {f"{name}_windows_per_s": rate for name, rate in best.items()}
    figures |= {f"{name}_particle_steps_per_s": rate * mean_particles for name, rate in best.items()}
    return {**figures, "quick_speedup_vs_49b60ed": best["quick"] / best["quick_49b60ed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--particles", type=int, default=1500, help="particles per sample (batch of 2)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for both sides (default: torch's); on a loaded machine 1 can beat 2",
    )
    parser.add_argument(
        "--peer-python", default=PEER_PYTHON, help="python of the geoelements/gns venv"
    )
    parser.add_argument(
        "--peer-runner", default=PEER_RUNNER, help="geoelements/gns training-step runner"
    )
    parser.add_argument("--quick-windows", type=int, default=2500,
                        help="windows each `quick` timing trains on (0: skip the quick figures)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="gnsim-bench-") as temporary:
        folder = Path(temporary)
        trajectories, metadata = write_sample(folder, args.particles)
        matmul = matmul_flops_per_s(device)
        ours = measure_gnsim(trajectories, metadata, device, args.steps, args.warmup)
        matmul = max(matmul, matmul_flops_per_s(device))  # best of before and after: less noise
        peer = measure_peer(
            args.peer_python,
            args.peer_runner,
            folder,
            device,
            args.steps,
            args.warmup,
            torch.get_num_threads(),
        )
        quick = {}
        if args.quick_windows:
            water = generate("water", folder / "water")
            quick = measure_quick(water, folder / "quick", args.quick_windows)
    particles = sum(p.shape[1] for p in trajectories)
    steps_per_s = 1 / ours["seconds_per_step"]
    achieved = ours["flops_per_step"] * steps_per_s
    figures = {
        "benchmark": "training",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "model": "paper",
        "bf16": device.type == "cuda" or native_bf16(),
        "batch_size": 2,
        "particles_per_step": particles,
        "edges_per_step": ours["edges_per_step"],
        "steps_per_s": steps_per_s,
        "particle_steps_per_s": particles * steps_per_s,
        "flops_per_step": ours["flops_per_step"],
        "achieved_flops_per_s": achieved,
        "matmul_flops_per_s": matmul,
        "fraction_of_matmul_peak": achieved / matmul,
        **peer,
        **quick,
    }
    gns = peer.get("gns")
    if gns and gns.get("steps_per_s"):
        figures["speedup_vs_gns"] = steps_per_s / gns["steps_per_s"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
