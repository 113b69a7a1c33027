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
import pickle
import random
import sys
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.optim.swa_utils import get_ema_multi_avg_fn
from tqdm.auto import tqdm

from gnsim.baselines import gravity_per_frame
from gnsim.convert import ensure_dataset
from gnsim.dataset import (
    DatasetError,
    TrajectoryDataset,
    WindowDataset,
    first_line,
    read_metadata,
)
from gnsim.learned_simulator import LearnedSimulator, SimulatorConfig, non_kinematic_mask
from gnsim.rollout import rollout
from training.config import (
    DEFAULTS,
    MODEL_KEYS,
    TrainingError,
    check_values,
    learning_rate,
    load_config,
    parse_overrides,
    read_yaml,
)
from training.data import NoisyWindows, WindowSampler, collate, make_loader, material_per_particle

# A normalised one-step loss above this has diverged: predicting zero scores about `dim`.
DIVERGED_LOSS = 1e6
# Metadata that fixes what a trained model means: a checkpoint only resumes on data that agrees.
METADATA_KEYS = (
    "dim",
    "bounds",
    "default_connectivity_radius",
    "vel_mean",
    "vel_std",
    "acc_mean",
    "acc_std",
)


def train(
    config: dict, data: str | os.PathLike, out: str | os.PathLike, resume: bool = False
) -> dict:
    """Train per `config` on dataset `data` into run folder `out`; returns the last metrics."""
    check_values(config)
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
    if config["batch_size"] % world_size:
        raise TrainingError(
            f"batch_size {config['batch_size']} is not divisible by the {world_size} processes"
        )
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    use_amp = config["amp"] == "bf16" or (config["amp"] == "auto" and device.type == "cuda")
    if device.type == "cuda":
        # TF32 matmuls: float32 range, tensor-core speed, ~1e-3 relative precision.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(out)
    checkpoint_dir = out / "checkpoints"

    # ---- data ---------------------------------------------------------------------------------
    data = dataset_folder(data, master, distributed)
    metadata = load_metadata(data)
    model_config = SimulatorConfig.from_dict(config)
    windows = WindowDataset(data, "train", model_config.input_frames)
    material_key = config["material_key"] if model_config.material_features else None
    if material_key and material_key not in windows[0]:
        raise TrainingError(
            f"{data}: material_features={model_config.material_features} but the "
            f"trajectories have no {material_key!r} field"
        )

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
        checkpoint = load_checkpoint(checkpoint_dir / "last.pt", simulator, metadata, optimizer)
        step, best = checkpoint["step"], checkpoint["best"]
        set_rng_state(checkpoint["rng"])
        if average is not None:
            average.load_state_dict(checkpoint.get("average", checkpoint["model"]))
    elif config["init_from"]:
        load_checkpoint(Path(config["init_from"]), simulator, metadata)
    connectivity_radius = simulator.connectivity_radius
    model = torch.compile(simulator, dynamic=True) if config["compile"] else simulator
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    train_set = NoisyWindows(
        windows,
        model_config.noise_std,
        config["seed"],
        connectivity_radius,
        metadata,
        material_key,
        model_config.material_features,
        config["correct_position_noise"],
        config["noise_velocity_correction"],
    )
    try:
        sampler = WindowSampler(
            len(train_set), config["batch_size"], config["seed"], rank, world_size, start_step=step
        )
    except ValueError as error:
        raise TrainingError(f"{data}: {error}") from None
    loader = iter(make_loader(train_set, sampler, config["num_workers"]))
    validation = (
        Validation(data, config, metadata, connectivity_radius, material_key) if master else None
    )

    # ---- run folder (rank 0) ----------------------------------------------------------------------
    logger = None
    if master:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(
            out / "config.yaml",
            yaml.safe_dump({**config, "data": str(data)}, sort_keys=False).encode(),
        )
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
    first_diverged = torch.tensor(config["steps"] + 1, device=device)  # none yet
    last_metrics: dict = {}
    while step < config["steps"]:
        batch = next(loader).to(device, non_blocking=True)
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr

        with autocast:
            predicted = model(
                batch.position,
                batch.particle_type,
                batch.edge_index,
                material=getattr(batch, "material", None),
            )
        target = simulator.normalized_acceleration_target(batch.target, batch.position)
        loss = one_step_loss(predicted.float(), target, batch.particle_type, distributed)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(simulator.parameters(), config["grad_clip"])
        optimizer.step()
        if average is not None:
            update_average(averaged_weights, weights, step)
        step += 1
        # Marked on the device, read at log and checkpoint steps only: no host sync per step.
        diverged = ~(loss.detach().abs() <= DIVERGED_LOSS)  # NaN compares false
        first_diverged = torch.where(diverged & (first_diverged > step), step, first_diverged)
        if step % config["log_every"] == 0 or step % config["checkpoint_every"] == 0 or (
            step == config["steps"]
        ):
            stop_if_diverged(first_diverged, step, simulator, distributed)

        # Sum on the device, read at log steps only: no host sync per step.
        loss_sum, loss_count, samples = (
            loss_sum + loss.detach(),
            loss_count + 1,
            samples + config["batch_size"],
        )
        if step % config["log_every"] == 0 or step == config["steps"]:
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
            validate_now = validation.available and (
                step % config["validate_every"] == 0 or step == config["steps"]
            )
            if validate_now:
                scores = validation.run(simulator if average is None else average, device)
                logger.log({"step": step, **scores})
                last_metrics.update(scores)
                score = scores.get("valid_rollout_mse", scores["valid_one_step_mse"])
                if score < best:
                    best = score
                    save("best.pt")
            if step % config["checkpoint_every"] == 0 or step == config["steps"]:
                save("last.pt")
    progress.close()
    if logger:
        logger.close()
    return last_metrics


def stop_if_diverged(
    first_diverged: torch.Tensor, step: int, simulator: LearnedSimulator, distributed: bool
) -> None:
    """Stop before a diverged model is saved: the checkpoints on disk stay the last good ones."""
    if distributed:  # every rank stops together, at the earliest step any rank saw
        dist.all_reduce(first_diverged, op=dist.ReduceOp.MIN)
    if not all(bool(torch.isfinite(p).all()) for p in simulator.parameters()):
        first_diverged.fill_(min(int(first_diverged), step))
    if int(first_diverged) <= step:
        raise TrainingError(
            f"training diverged at step {int(first_diverged)}: the loss or the weights were not "
            f"finite, or the loss was above {DIVERGED_LOSS:g}; the checkpoints on disk are from "
            "before it (try a lower learning_rate, or check the data with gnsim.validate)"
        )


def one_step_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    particle_type: torch.Tensor,
    distributed: bool = False,
) -> torch.Tensor:
    """Squared error of normalised accelerations, summed over axes, averaged over predicted particles.

    Under DDP the average is over the global batch: each rank divides by the global count / world
    size, so DDP's gradient mean equals the one-process gradient of the same global batch.
    """
    mask = non_kinematic_mask(particle_type)
    squared_error = ((predicted - target) ** 2).sum(dim=-1)
    count = mask.sum().to(squared_error.dtype)
    if distributed:
        count = count.clone()
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    total = torch.where(mask, squared_error, torch.zeros_like(squared_error)).sum()
    return total / count.clamp(min=1)


class Validation:
    """One-step position MSE on evenly spaced valid windows, and a short rollout position MSE."""

    def __init__(
        self,
        data,
        config: dict,
        metadata: dict,
        connectivity_radius: float,
        material_key: str | None,
    ):
        self.available = (Path(data) / "valid.h5").is_file()
        if not self.available:
            print(f"note: {data} has no valid.h5; validation is skipped", file=sys.stderr)
            return
        input_frames = config["input_frames"]
        windows = WindowDataset(data, "valid", input_frames)
        clean = NoisyWindows(
            windows,
            0.0,
            0,
            connectivity_radius,
            metadata,
            material_key,
            config["material_features"],
        )
        indices = np.unique(
            np.linspace(0, len(windows) - 1, min(config["valid_samples"], len(windows))).round()
        )
        self.samples = [(int(i), 0) for i in indices]
        self.dataset = clean
        self.trajectories = TrajectoryDataset(data, "valid", input_frames + 1)
        self.rollout_count = min(config["rollout_trajectories"], len(self.trajectories))
        self.rollout_steps = config["rollout_steps"]
        self.material_key, self.material_features = material_key, config["material_features"]

        self.baseline: dict | None = None

    def run(self, simulator: LearnedSimulator, device: torch.device) -> dict:
        """The model's scores, beside those of the mean-acceleration baseline (computed once)."""
        was_training = simulator.training
        simulator.eval()
        if self.baseline is None:
            baseline = self.scores(MeanAccelerationBaseline(simulator), device)
            self.baseline = {f"baseline_{key}": value for key, value in baseline.items()}
        scores = {**self.scores(simulator, device), **self.baseline}
        simulator.train(was_training)
        return scores

    @torch.inference_mode()
    def scores(self, simulator: LearnedSimulator, device: torch.device) -> dict:
        squared, count = 0.0, 0
        for start in range(0, len(self.samples), 8):
            batch = collate([self.dataset[key] for key in self.samples[start : start + 8]]).to(
                device
            )
            predicted = simulator.predict_position(
                batch.position,
                batch.particle_type,
                batch.edge_index,
                material=getattr(batch, "material", None),
            )
            mask = non_kinematic_mask(batch.particle_type)
            squared += float(((predicted - batch.target)[mask] ** 2).sum())
            count += int(mask.sum()) * predicted.shape[-1]
        scores = {"valid_one_step_mse": squared / max(count, 1)}
        if self.rollout_count and self.rollout_steps > 0:
            errors = []
            for k in range(self.rollout_count):
                trajectory = self.trajectories[k]
                position, particle_type = trajectory["position"], trajectory["particle_type"]
                steps = min(self.rollout_steps, len(position) - simulator.config.input_frames)
                material = None
                if self.material_features:
                    material = material_per_particle(
                        trajectory, self.material_key, self.material_features, len(particle_type)
                    )
                predicted = rollout(
                    simulator, position, particle_type, steps, material=material
                ).cpu()
                frames = slice(simulator.config.input_frames, simulator.config.input_frames + steps)
                mask = non_kinematic_mask(particle_type)
                errors.append(float(((predicted[frames] - position[frames])[:, mask] ** 2).mean()))
            scores["valid_rollout_mse"] = float(np.mean(errors))
        return scores


class MeanAccelerationBaseline(torch.nn.Module):
    """The learned simulator's integrator with a zero normalised acceleration: every particle
    keeps its velocity plus the dataset's mean acceleration (gravity, in effect). A model that
    learned anything beats it."""

    def __init__(self, simulator: LearnedSimulator):
        super().__init__()
        self.simulator = simulator
        self.config = simulator.config

    def connectivity(self, position: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """No edges: its particles do not interact."""
        return torch.empty(2, 0, dtype=torch.long, device=position.device)

    def predict_position(
        self,
        position_sequence,
        particle_type,
        edge_index=None,
        batch=None,
        material=None,
        kinematic_position=None,
    ) -> torch.Tensor:
        zero = torch.zeros_like(position_sequence[:, -1])
        return self.simulator.integrate(zero, position_sequence)


# ---- checkpoints ---------------------------------------------------------------------------------


def save_checkpoint(
    path: Path,
    simulator: LearnedSimulator,
    optimizer,
    config: dict,
    metadata: dict,
    step: int,
    best: float,
    average: LearnedSimulator | None = None,
) -> None:
    """Everything to resume exactly, written to a temporary name and renamed."""
    checkpoint = {
        "step": step,
        "best": best,
        "model": simulator.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": config,
        "model_config": simulator.config.as_dict(),
        "metadata": {key: metadata[key] for key in METADATA_KEYS},
        "rng": get_rng_state(),
    }
    if average is not None:
        checkpoint["average"] = average.state_dict()
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)


def simulator_from_checkpoint(path: str | os.PathLike, metadata: dict) -> tuple[LearnedSimulator, dict]:
    """The trained simulator of a checkpoint (its own model config, its weight average when it
    kept one), in eval mode, and the checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: checkpoint not found")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)["model_config"]
    except (OSError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as error:
        raise TrainingError(f"{path}: not a readable checkpoint ({first_line(error)})") from None
    simulator = LearnedSimulator(SimulatorConfig.from_dict(saved), metadata)
    checkpoint = load_checkpoint(path, simulator, metadata)
    if "average" in checkpoint:
        simulator.load_state_dict(checkpoint["average"])
    return simulator.eval(), checkpoint


def load_checkpoint(
    path: Path, simulator: LearnedSimulator, metadata: dict, optimizer=None
) -> dict:
    """Load weights (and optimiser state) from `path`; one-line errors for a checkpoint that does not fit."""
    if not path.is_file():
        raise TrainingError(f"{path}: checkpoint not found")
    try:
        # weights_only: a checkpoint is data, it cannot run code when loaded.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user mistake
        raise TrainingError(
            f"{path}: not a readable checkpoint ({first_line(error)})"
        ) from None
    saved_config = checkpoint.get("model_config", {})
    for key in MODEL_KEYS:
        if key == "hard_walls":  # changes no weight: a run may switch it
            continue
        if key in saved_config and saved_config[key] != getattr(simulator.config, key):
            raise TrainingError(
                f"{path}: checkpoint holds a model of another shape: {key}="
                f"{saved_config[key]!r} there, {getattr(simulator.config, key)!r} here"
            )
    for key in METADATA_KEYS:
        if key in checkpoint.get("metadata", {}) and not np.allclose(
            checkpoint["metadata"][key], metadata[key]
        ):
            raise TrainingError(
                f"{path}: the dataset's metadata differs from the checkpoint's: {key}="
                f"{metadata[key]!r} here, {checkpoint['metadata'][key]!r} there"
            )
    try:
        simulator.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        detail = next(
            (
                line.strip()
                for line in str(error).splitlines()
                if "size mismatch" in line or "Missing" in line or "Unexpected" in line
            ),
            str(error).splitlines()[0],
        )
        raise TrainingError(
            f"{path}: checkpoint holds a model of another shape ({detail})"
        ) from None
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint


def get_rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    numpy_state = np.random.get_state()
    state["numpy"] = {
        "key": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "pos": int(numpy_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    np.random.set_state(
        ("MT19937", state["numpy"]["key"].numpy().astype(np.uint32), state["numpy"]["pos"])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- small helpers -------------------------------------------------------------------------------


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is None:  # torch.cuda.set_device needs an index
        device = torch.device("cuda", local_rank)
    return device


def dataset_folder(data, master: bool = True, distributed: bool = False) -> Path:
    """`data` itself, or, for a dataset in another format, its conversion (made once, by rank 0)."""
    if not Path(data).is_dir():
        return Path(data)  # load_metadata names what is missing
    try:
        if master:
            data = ensure_dataset(data)
        if distributed:
            dist.barrier()  # the other ranks find rank 0's conversion
        return data if master else ensure_dataset(data)
    except DatasetError as error:
        raise TrainingError(f"no usable dataset at {data} ({error})") from None


def load_metadata(data) -> dict:
    try:
        metadata = read_metadata(data)
        gravity_per_frame(metadata)  # a gravity of another dimension is refused here, not mid-run
        return metadata
    except ValueError as error:  # DatasetError, or the gravity's
        raise TrainingError(f"no usable dataset at {data} ({error})") from None


def write_atomic(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_bytes(content)
    os.replace(temporary, path)


class MetricsLogger:
    """Appends JSON lines to metrics.jsonl (and TensorBoard scalars when tensorboard is installed)."""

    def __init__(self, out: Path, resumed_step: int, tensorboard: bool):
        self.path = out / "metrics.jsonl"
        # On resume, drop lines an interrupted run logged after its last checkpoint.
        if self.path.is_file():
            lines = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= resumed_step
            ]
            write_atomic(self.path, "".join(line + "\n" for line in lines).encode())
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
            saved = Path(args.out) / "config.yaml"
            if not saved.is_file():
                raise TrainingError(f"{saved}: not found; is {args.out} a run folder?")
            config = {
                **DEFAULTS,
                **read_yaml(saved, extra_keys=("data",)),
                **parse_overrides(overrides),
            }
        else:
            config = load_config(args.config, overrides)
        data = args.data or config.pop("data", None) or "datasets/water"
        config.pop("data", None)
        out = args.out or f"runs/{Path(args.config).stem}-{datetime.now():%Y%m%d-%H%M%S}"
        if not args.resume and (Path(out) / "checkpoints" / "last.pt").is_file():
            raise TrainingError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        metrics = train(config, data, out, resume=args.resume)
    except (TrainingError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"run": str(out), **metrics}))


if __name__ == "__main__":
    main()
