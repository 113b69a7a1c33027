"""Train the GNS learned simulator on a dataset folder; checkpoints and metrics go to a run folder.

`python -m training.train [--config NAME_OR_YAML] [--data DIR] [--out RUN_DIR] [key=value ...]`.

One loop, top to bottom (after nanoGPT): load data and model, then step, evaluate, checkpoint.
Distributed under `torchrun` (DDP; NCCL on GPU, gloo on CPU), with I/O on rank 0 only.
`batch_size` is the global batch, split across ranks; see docs/training.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.optim.swa_utils import get_ema_multi_avg_fn
from tqdm.auto import tqdm

from gnsim.atomic import remove_stale_partials, take_lock, write_atomic
from gnsim.checkpoint import (
    METADATA_KEYS,
    PHYSICS_KEYS,
    CheckpointError,
    check_metadata,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    set_rng_state,
    start_from_model,
)
from gnsim.dataset import DatasetError, TrajectoryDataset, WindowDataset, read_json_lines
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig, material_per_particle
from gnsim.metrics import SCORECARD, losing_rows, selection_score
from gnsim.scorecard import aggregates, score, scorecard_item
from gnsim.strategies import TrainingNoise, pushforward_target
from training.config import (
    DEFAULTS,
    TrainingError,
    derived_from_data,
    layered,
    learning_rate,
    load_config,
    parse_overrides,
    pushforward_schedule,
    read_yaml,
)
from training.data import NoisyWindows, WindowSampler, make_loader, seeded_generator
from training.environment import dataset_folder, load_metadata, native_bf16, pick_device
from training.loss import one_step_loss


def train(
    config: dict, data: str | os.PathLike, out: str | os.PathLike, resume: bool = False,
    command: str | None = None,
) -> dict:
    """Train per `config` on dataset `data` into run folder `out`; returns the last metrics.

    `command`, the command line that started or resumed the run, is appended to command.txt."""
    # ---- distributed setup: one process per device under torchrun -------------------------
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(config["device"], local_rank)
    distributed = world_size > 1
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and autocast then use this rank's GPU
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    use_amp = config["amp"] == "bf16" or (config["amp"] == "auto" and (device.type == "cuda" or native_bf16()))
    if device.type == "cuda":
        # TF32 matmuls: float32 range, tensor-core speed, ~1e-3 relative precision.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(out)
    checkpoint_dir = out / "checkpoints"

    # ---- data ---------------------------------------------------------------------------------
    data = dataset_folder(data, master, distributed)
    metadata = load_metadata(data)
    pushforward = pushforward_schedule(config)
    windows = WindowDataset(data, "train", config["input_frames"], pushforward.max_unroll if pushforward else 0)
    config = {**config, **derived_from_data(config, metadata, windows.mean_particles(), world_size)}
    model_config = SimulatorConfig.from_dict(config)
    if config["batch_size"] % world_size:
        raise TrainingError(
            f"batch_size {config['batch_size']} is not divisible by the {world_size} processes"
        )
    try:
        material_per_particle(windows[0], model_config)
    except ValueError as error:
        raise TrainingError(f"{data}: {error}") from None
    largest = max(windows.file.particle_type_ids())
    if model_config.num_particle_types > 1 and largest >= model_config.num_particle_types:  # else no embedding
        raise TrainingError(f"{data}: particle type id {largest} needs num_particle_types above it, "
                            f"got {model_config.num_particle_types}")

    # ---- model, optimiser, and the state to resume from ---------------------------------------
    torch.manual_seed(config["seed"])  # the same initial weights on every rank
    try:
        simulator = LearnedSimulator(model_config, metadata).to(device)
    except ValueError as error:  # a model key out of range
        raise TrainingError(str(error)) from None
    optimizer = torch.optim.Adam(simulator.parameters(), lr=config["learning_rate"])
    # The exponential moving average of the weights is what validation scores and best.pt serves.
    average = copy.deepcopy(simulator).requires_grad_(False) if config["ema_decay"] else None
    step, best = 0, math.inf
    if resume:
        checkpoint = load_checkpoint(checkpoint_dir / "last.pt", simulator, metadata, METADATA_KEYS, optimizer)
        step, best = checkpoint["step"], checkpoint["best"]
        set_rng_state(checkpoint["rng"])
        if average is not None:
            load_weights(checkpoint_dir / "last.pt", checkpoint, average, average=True)
    elif config["init_from"]:  # fine-tuning: other data of the same physics
        load_checkpoint(Path(config["init_from"]), simulator, metadata, PHYSICS_KEYS)
    model = torch.compile(simulator, dynamic=True) if config["compile"] else simulator
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    noise = TrainingNoise(model_config.noise_std, config["correct_position_noise"],
                          config["noise_velocity_correction"])
    train_set = NoisyWindows(windows, model_config, simulator.graph, noise, config["seed"])
    try:
        sampler = WindowSampler(
            len(train_set), config["batch_size"], config["seed"], rank, world_size, start_step=step
        )
    except ValueError as error:
        raise TrainingError(f"{data}: {error}") from None
    loader = iter(make_loader(train_set, sampler, config["num_workers"]))
    validation = (
        Validation(data, config, metadata, model_config) if master else None
    )

    # ---- run folder (rank 0) ----------------------------------------------------------------------
    logger = None
    if master:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for folder in (out, checkpoint_dir):  # what a killed save left behind is never whole
            remove_stale_partials(folder)
        write_atomic(
            out / "config.yaml",
            yaml.safe_dump({**config, "data": str(data)}, sort_keys=False).encode(),
        )
        if command:
            with (out / "command.txt").open("a") as file:
                file.write(command + "\n")
        logger = MetricsLogger(
            out, resumed_step=step if resume else 0, tensorboard=config["tensorboard"]
        )

    # ---- the loop: load, step, evaluate, checkpoint --------------------------------------------
    progress = tqdm(
        total=config["steps"],
        initial=step,
        desc="train",
        disable=None if master else True,
        dynamic_ncols=True,
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else nullcontext()
    if average is not None:  # one fused lerp over all weights per step, not a loop of launches
        update_average = get_ema_multi_avg_fn(config["ema_decay"])
        averaged_weights, weights = list(average.parameters()), list(simulator.parameters())

    def save(name: str) -> None:  # the state as of now: step and best are read at the call
        save_checkpoint(
            checkpoint_dir / name, simulator, optimizer, config, metadata, step, best, average
        )

    loss_sum, loss_count, samples, clock = 0.0, 0, 0, time.perf_counter()
    diverged = torch.zeros((), dtype=torch.long, device=device)
    last_metrics: dict = {}
    # Ctrl-C ends the step under way; then the run saves last.pt and stops (Interrupted).
    interrupted: list[int] = []
    main_thread = threading.current_thread() is threading.main_thread()  # where signals are handled
    # SIGTERM (a scheduler's or `kill`'s stop) likewise: the run saves what it has and stops.
    stops = (signal.SIGINT, signal.SIGTERM)
    previous_handlers = ({stop: signal.signal(stop, lambda signum, frame: interrupted.append(signum)) for stop in stops}
                         if main_thread else {})
    try:
        while step < config["steps"] and not interrupted:
            batch = next(loader).to(device, non_blocking=True)
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr

            position, target, edge_index = batch.position, batch.target, batch.edge_index
            material = getattr(batch, "material", None)
            unroll = pushforward.draw(step, seeded_generator(config["seed"], 2 << 20, step)) if pushforward else 0
            if unroll:  # the model's own predictions become the inputs (no gradient through them)
                with torch.no_grad(), autocast:
                    for k in range(unroll):
                        next_position = simulator.predict_position(
                            position, batch.particle_type, batch=batch.batch, material=material,
                            kinematic_position=batch.truth[:, k])
                        position = torch.cat([position[:, 1:], next_position[:, None]], dim=1)
                target = pushforward_target(batch.truth, position, unroll,
                                            config["correct_position_noise"], simulator.displacement)
                edge_index = simulator.connectivity(position[:, -1], batch.batch)
            with autocast:
                predicted = model(position, batch.particle_type, edge_index, material=material)
            target = simulator.normalized_acceleration_target(target, position)
            loss = one_step_loss(predicted.float(), target, batch.particle_type, distributed)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(simulator.parameters(), config["grad_clip"])
            optimizer.step()
            if average is not None:
                update_average(averaged_weights, weights, step)
            step += 1

            # Sum on the device, read at log steps only: no host sync per step.
            loss_sum, loss_count, samples = (
                loss_sum + loss.detach(),
                loss_count + 1,
                samples + config["batch_size"],
            )
            # The first step whose loss was not finite or past DIVERGED_LOSS, also kept on the device.
            diverged = torch.where((diverged == 0) & ~(loss.detach().abs() <= DIVERGED_LOSS), step, diverged)
            log_now = step % config["log_every"] == 0 or step == config["steps"]
            validate_now = step % config["validate_every"] == 0 or step == config["steps"]
            checkpoint_now = step % config["checkpoint_every"] == 0 or step == config["steps"]
            keep_now = config["keep_every"] and step % config["keep_every"] == 0
            if log_now or validate_now or checkpoint_now or keep_now:
                stop_if_diverged(diverged, step, simulator, distributed, checkpoint_dir / "last.pt")
            if log_now:
                if distributed:  # the global batch's loss: the mean of the ranks' shares
                    dist.all_reduce(loss_sum)
                    loss_sum /= world_size
                elapsed = time.perf_counter() - clock
                last_metrics = {
                    "step": step,
                    "loss": float(loss_sum) / loss_count,
                    "lr": lr,
                    "samples_per_s": samples / elapsed,
                }
                if master:
                    logger.log(last_metrics)
                    progress.set_postfix(
                        loss=f"{last_metrics['loss']:.3g}",
                        lr=f"{lr:.2g}",
                        samples_s=f"{last_metrics['samples_per_s']:.1f}",
                    )
                loss_sum, loss_count, samples, clock = 0.0, 0, 0, time.perf_counter()
            progress.update(1)

            if master:
                if validate_now and validation.available:
                    scores = validation.run(simulator if average is None else average)
                    logger.log({"step": step, **scores})
                    last_metrics.update(scores)
                    if scores["valid_score"] < best:
                        best = scores["valid_score"]
                        save("best.pt")
                if checkpoint_now:
                    save("last.pt")
                if keep_now:
                    save(f"step_{step:08d}.pt")
    finally:
        if main_thread:
            for stop, handler in previous_handlers.items():
                signal.signal(stop, handler)
    if interrupted:
        stop_if_diverged(diverged, step, simulator, distributed, checkpoint_dir / "last.pt")
        if master:
            save("last.pt")
        raise Interrupted(f"interrupted at step {step}: {checkpoint_dir / 'last.pt'} holds it; "
                          f"--resume --out {out} continues")
    progress.close()
    if logger:
        logger.close()
    return last_metrics


def worker_message(error: Exception) -> str:
    """An error's own line: a DataLoader worker re-raises it wrapped in the worker's traceback,
    whose last line is `module.ErrorClass: message`."""
    message = str(error)
    if "Original Traceback" not in message:
        return message
    return message.strip().splitlines()[-1].split(": ", 1)[-1]


@contextmanager
def holding(out: Path) -> Iterator[None]:
    """Rank 0 holds the run folder `out` while it trains, by a lock beside it: a second run into
    the same folder is refused, not interleaved with the first. A killed run's lock is taken over."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    lock = out.parent / f".{out.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    if not take_lock(lock):
        raise TrainingError(f"{out}: another training run is using it ({lock} names its host and pid)")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class Interrupted(TrainingError):
    """Ctrl-C or SIGTERM: the run saved its state and stopped."""


# A normalised-acceleration loss this large (the data's own is O(1) per axis) has diverged.
DIVERGED_LOSS = 1e6


def stop_if_diverged(diverged: torch.Tensor, step: int, model: torch.nn.Module, distributed: bool,
                     last: Path) -> None:
    """Raise, before anything is saved, if some step's loss was not finite or past DIVERGED_LOSS,
    or the weights are not finite now (a finite loss can be followed by an update that broke them)."""
    broken = ~torch.stack([p.isfinite().all() for p in model.parameters()]).all()
    flags = torch.stack([diverged, broken.long()])
    if distributed:  # every rank stops together
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    loss_step, weights_broken = (int(flag) for flag in flags)
    if loss_step or weights_broken:
        kept = f"{last} keeps the last checkpoint before it" if last.is_file() else "no checkpoint was written"
        cause = (f"step {loss_step} (loss not finite or above {DIVERGED_LOSS:g})" if loss_step else
                 f"step {step} (weights not finite)")
        raise TrainingError(f"training diverged at {cause}; {kept}. Lower learning_rate or check the data")


class Validation:
    """The scorecard on the first `rollout_trajectories` valid trajectories, `rollout_steps`
    frames each: the model's rows (`valid_ROW`), the baselines' (`valid_BASELINE_ROW`), and
    `valid_score`, the selection score that picks best.pt (gnsim.metrics.selection_score)."""

    def __init__(self, data, config: dict, metadata: dict, model_config: SimulatorConfig):
        self.available = (Path(data) / "valid.h5").is_file() and config["rollout_trajectories"] > 0
        if not self.available:
            print(f"note: {data} has no valid.h5 (or rollout_trajectories=0); validation is skipped",
                  file=sys.stderr)
            return
        frames = model_config.input_frames + config["rollout_steps"]
        trajectories = TrajectoryDataset(data, "valid", model_config.input_frames + 1)
        count = min(config["rollout_trajectories"], len(trajectories))
        try:
            self.items = [scorecard_item(trajectories[k], model_config, frames) for k in range(count)]
        except ValueError as error:
            raise TrainingError(f"{data}/valid.h5: {error}") from None
        self.metadata = metadata

    def run(self, simulator: LearnedSimulator) -> dict:
        was_training = simulator.training
        simulator.eval()
        table = aggregates(score(simulator, self.items, self.metadata)[0])
        simulator.train(was_training)
        scores = {"valid_score": selection_score(table), "valid_rows_lost": len(losing_rows(table))}
        for method, rows in table.items():
            prefix = "valid_" if method == "model" else f"valid_{method}_"
            scores.update({prefix + VALID_NAMES.get(key, key): rows[key] for key in SCORECARD})
        return scores


VALID_NAMES = {"mse_rollout": "rollout_mse"}  # the log's name for the whole-rollout MSE


def load_checkpoint(path: Path, simulator: LearnedSimulator, metadata: dict, keys: tuple[str, ...],
                    optimizer=None) -> dict:
    """Load `path`'s weights (and optimiser state) into `simulator`, on data agreeing on `keys`."""
    checkpoint = read_checkpoint(path)
    check_metadata(path, checkpoint.get("metadata", {}), metadata, keys)
    load_weights(path, checkpoint, simulator, optimizer)
    return checkpoint


# ---- small helpers -------------------------------------------------------------------------------


class MetricsLogger:
    """Appends JSON lines to metrics.jsonl (and TensorBoard scalars when tensorboard is installed)."""

    def __init__(self, out: Path, resumed_step: int, tensorboard: bool):
        self.path = out / "metrics.jsonl"
        # On resume, drop lines an interrupted run logged after its last checkpoint.
        if self.path.is_file():
            records = [r for r in read_json_lines(self.path) if r["step"] <= resumed_step]  # a torn tail dropped
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in records).encode())
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                pass

    def log(self, metrics: dict) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps({**metrics, "time": round(time.time(), 3)}) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if key != "step":
                    self.writer.add_scalar(key, value, metrics["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", default="paper", help="preset in training/configs (paper, quick) or a YAML path"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="dataset folder (default: datasets/water, or the resumed run's)",
    )
    parser.add_argument("--out", default=None, help="run folder (default: runs/<config>-<time>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (its config.yaml, then overrides)",
    )
    parser.add_argument(
        "--from", dest="from_model", type=Path, default=None,
        help="with --resume: a shipped model folder (models/NAME) whose state.pt starts --out, "
        "unless --out is already further on: continues its run on another machine",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. steps=1000"
    )
    args = parser.parse_args(argv)
    try:
        overrides = args.overrides + ([f"device={args.device}"] if args.device else [])
        if args.resume:
            if args.out is None:
                raise TrainingError("--resume needs --out RUN_DIR, the run to continue")
            if args.from_model:
                start_from_model(args.from_model, Path(args.out))
            saved = Path(args.out) / "config.yaml"
            if not saved.is_file():
                raise TrainingError(f"{saved}: not found; is {args.out} a run folder?")
            config = layered(DEFAULTS, read_yaml(saved, extra_keys=("data",)), parse_overrides(overrides))
        else:
            if args.from_model:
                raise TrainingError("--from continues a shipped run: pass --resume too")
            config = load_config(args.config, overrides)
        data = args.data or config.pop("data", None) or "datasets/water"
        config.pop("data", None)
        out = args.out or f"runs/{Path(args.config).stem}-{datetime.now():%Y%m%d-%H%M%S}"
        if Path(out).exists() and not Path(out).is_dir():
            raise TrainingError(f"{out}: exists and is not a folder; choose another --out")
        if not args.resume and (Path(out) / "checkpoints" / "last.pt").is_file():
            raise TrainingError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        command = shlex.join(["python", "-m", "training.train", *(sys.argv[1:] if argv is None else argv)])
        with holding(Path(out)):
            metrics = train(config, data, out, resume=args.resume, command=command)
    except Interrupted as message:
        print(message, file=sys.stderr)
        sys.exit(130)
    except (TrainingError, DatasetError, CheckpointError, OSError) as error:  # OSError: an --out it may not write
        print(f"error: {worker_message(error)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"run": str(out), **metrics}))


if __name__ == "__main__":
    main()
