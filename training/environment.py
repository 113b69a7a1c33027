"""Where a training or evaluation job runs, and on what: the device, the dataset folder, and the
arguments of tools that read a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.distributed as dist

from gnsim.baselines import gravity_per_frame
from gnsim.convert import ensure_dataset
from gnsim.dataset import DatasetError, read_metadata
from training.config import TrainingError


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"device {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is None:  # torch.cuda.set_device needs an index
        device = torch.device("cuda", local_rank)
    return device


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX): there bf16 matmuls of the
    model's shapes ran 2.8x float32's (docs/training.md); elsewhere torch emulates them, slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


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


def add_run_arguments(parser: argparse.ArgumentParser, split: str) -> None:
    """The arguments `gnsim.checkpoint.load_run` and a split take, for tools that read a trained model."""
    parser.add_argument("run", type=Path, help="a run or model folder (its best checkpoint, else its last) or a checkpoint file")
    parser.add_argument("--data", type=Path, help="dataset folder (default: the one the run trained on)")
    parser.add_argument("--split", default=split, choices=["train", "valid", "test"])
