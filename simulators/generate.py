"""`python -m simulators.generate NAME`: build a dataset of simulated trajectories.

Trajectory k of a split is drawn from `default_rng([seed, split, k])`, so any worker can build
any trajectory alone: with `--shard K/N` (or under torchrun, RANK/WORLD_SIZE) worker K builds the
trajectories k = K mod N into `OUT/.shards/K-of-N/`, and the last worker to finish assembles the
shards, in order, into one dataset identical to an unsharded run.
"""

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from gnsim.atomic import remove_stale_partials, take_lock, write_json_atomic
from gnsim.dataset import SPLITS, DatasetError, DatasetWriter, split_file
from simulators.recipes import CONNECTIVITY_SPACINGS, RECIPES
from simulators.scene import SceneError, load_scene, parse_scene
from simulators.simulate import SimulationError, dataset_info, resolve_device, simulate
from simulators.taichi_scene import input_files, load_taichi_scene

SCENE_FORMATS = ("taichi_mpm",)  # inputs of other simulators that --scene-from re-runs


def generate(recipe: str, out: str | Path, *, size: str = "small", splits: dict[str, int] | None = None,
             frames: int | None = None, seed: int = 0, device: str | None = None,
             shard: tuple[int, int] = (0, 1), overwrite: bool = False) -> Path:
    """Generate recipe `recipe` into `out` (or, with a shard other than (0, 1), that shard's share)."""
    _check_out(Path(out), overwrite)
    spec = RECIPES[recipe]
    counts = dict(zip(SPLITS, spec.sizes[size].splits)) | (splits or {})
    config = spec.sizes[size]
    device = resolve_device(device)
    index, total = shard
    folder = Path(out) if total == 1 else Path(out) / ".shards" / f"{index}-of-{total}"
    metadata = {"simulator": "mls-mpm (warp)", "recipe": recipe, "size": size, "seed": seed,
                "frame_dt": config.frame_dt, "particle_spacing": config.particle_spacing,
                "grid_spacing": 2 * config.particle_spacing, "requested_trajectories": counts,
                # The constant-velocity-plus-gravity baseline reads it (gnsim.baselines).
                "gravity": spec.gravity}
    bounds, metadata = spec.dataset_info(size, metadata)
    # What makes a shard's trajectories: shards merge, or a finished one is kept, only if equal.
    arguments = {"recipe": recipe, "size": size, "seed": seed, "splits": counts, "frames": frames}
    if total > 1:
        metadata["shard_arguments"] = arguments
        if (folder / "metadata.json").is_file():  # this shard is done: resume
            _check_arguments(folder, arguments, "this run")
            return _assemble_if_complete(Path(out), total)
    remove_stale_partials(folder)
    # Lazy: a list of a billion jobs alone would fill the memory.
    jobs = ((split, k) for split in SPLITS for k in range(index, counts[split], total))
    count = sum(len(range(index, counts[split], total)) for split in SPLITS)
    _check_disk(folder, count * (frames or spec.frames[size]) * config.particles[1] * spec.dim * 4)
    if total > 1:
        # A shard may hold no training trajectory, or none at all; the motion statistics are
        # computed again from the whole training split when the shards are assembled.
        metadata |= {key: [0.0] * spec.dim for key in ("vel_mean", "vel_std", "acc_mean", "acc_std")}
        if not count:
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder / "metadata.json", {"empty_shard": True, "shard_arguments": arguments})
            return _assemble_if_complete(Path(out), total)
    with DatasetWriter(folder, dim=spec.dim, dt=config.frame_dt, bounds=bounds,
                       connectivity_radius=config.connectivity_radius, metadata=metadata) as writer:
        for split, k in tqdm(jobs, total=count, desc=f"{recipe} trajectories", disable=None):
            if _terminated:  # a SIGTERM whose Terminated was swallowed (e.g. in a __del__)
                raise Terminated
            scene = recipe_scene(recipe, split, k, seed, size, frames)
            position, particle_type = _run(scene, device, f"{split} trajectory {k:05d}")
            writer.add(split, position, particle_type)
    if total > 1:
        return _assemble_if_complete(Path(out), total)
    return folder


def recipe_scene(recipe: str, split: str, index: int, seed: int = 0, size: str = "small",
                 frames: int | None = None) -> dict:
    """The scene of trajectory `index` of `split` in a recipe's dataset: each has its own seeded draw."""
    return RECIPES[recipe].scene(np.random.default_rng([seed, SPLITS.index(split), index]), size, frames)


def generate_scene(path: str | Path, out: str | Path, device: str | None = None, overwrite: bool = False) -> Path:
    """Simulate one scene file into `out` as trajectory 00000 of train.h5."""
    _check_out(Path(out), overwrite)
    scene = load_scene(path)
    position, particle_type = _run(scene, resolve_device(device), "train trajectory 00000")
    return _write_train(out, scene, *dataset_info(scene), [(position, particle_type)])


def generate_from_taichi(path: str | Path, out: str | Path, device: str | None = None, seed: int = 0) -> Path:
    """Re-run taichi_mpm input files (one, or a folder's inputs*.json) through our MPM into `out`:
    one train trajectory each, in the order of their numbers; the metadata names each input and
    keeps its scene, so that `simulators.diagnostics.compare_runs` pairs them with their runs."""
    files = input_files(path)
    scenes = [load_taichi_scene(file, seed) for file in files]
    parsed = [parse_scene(scene) for scene in scenes]
    device = resolve_device(device)
    runs = [_run(scene, device, file.name) for file, scene in zip(files, parsed)]
    bounds, metadata = dataset_info(parsed[0])  # the box, gravity and spacings they share
    del metadata["scene"]  # one per input instead, beside the input it came from
    metadata |= {"taichi_mpm_inputs": [str(file.resolve()) for file in files], "scenes": scenes}
    return _write_train(out, parsed[0], bounds, metadata, runs)


def _write_train(out: str | Path, scene, bounds: list, metadata: dict, runs: list) -> Path:
    remove_stale_partials(Path(out))
    with DatasetWriter(out, dim=scene.dim, dt=scene.frame_dt, bounds=bounds,
                       connectivity_radius=CONNECTIVITY_SPACINGS * scene.particle_spacing,
                       metadata=metadata) as writer:
        for position, particle_type in runs:
            writer.add("train", position, particle_type)
    return Path(out)


def _check_out(out: Path, overwrite: bool) -> None:
    """`out` must be new, empty, or a dataset generate wrote (its files are rewritten), unless
    `overwrite`: a folder of someone else's files would get ours on top of them."""
    if overwrite or not out.exists():
        return
    if not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder; choose another --out")
    try:
        metadata = json.loads((out / "metadata.json").read_text())
    except (OSError, ValueError):
        metadata = {}
    ours = isinstance(metadata, dict) and "format_version" in metadata and "simulator" in metadata
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # .shards, partials: ours
    if others and not ours:
        raise DatasetError(f"{out}: holds files that are not a dataset written by generate ({', '.join(others[:3])}"
                           f"{', ...' if len(others) > 3 else ''}); choose another --out or pass --overwrite")


def _run(scene, device: str, name: str):
    try:
        return simulate(scene, device=device, progress=True, description=name)
    except SimulationError as error:
        raise SimulationError(f"{name}, {error}") from None


def _check_disk(folder: Path, size: int) -> None:
    """Refuse, before simulating, a dataset whose positions alone would not fit on the disk."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if size > free:
        raise DatasetError(
            f"{folder}: the trajectories would need at least {size / 2**30:.3g} GiB, "
            f"more than the {free / 2**30:.3g} GiB free on its disk"
        )


def _check_arguments(shard: Path, arguments: dict, whose: str) -> None:
    recorded = json.loads((shard / "metadata.json").read_text()).get("shard_arguments")
    for key, value in arguments.items():
        if recorded is None or recorded.get(key) != value:
            raise DatasetError(
                f"{shard}: built with {key}={None if recorded is None else recorded.get(key)!r}, "
                f"but {whose} has {key}={value!r}; rerun with the same arguments or remove "
                f"{shard.parent}"
            )


def _assemble_if_complete(out: Path, total: int) -> Path:
    """Once every shard is whole, the one worker that takes the lock merges them into `out`."""
    shards = [out / ".shards" / f"{k}-of-{total}" for k in range(total)]
    if not all((s / "metadata.json").is_file() for s in shards):
        return shards[0].parent
    lock = out / ".shards" / "assemble.lock"
    if not take_lock(lock):  # that of a worker killed while assembling is taken over
        return out  # another worker is assembling
    first = json.loads((shards[0] / "metadata.json").read_text())  # shard 0 holds trajectory 0
    for shard in shards[1:]:
        try:
            _check_arguments(shard, first["shard_arguments"], str(shards[0]))
        except DatasetError:
            lock.unlink()
            raise
    keep = {k: v for k, v in first.items() if not k.startswith(("sequence_length", "num_trajectories_",
                                                               "vel_", "acc_"))}
    for key in ("bounds", "dim", "dt", "default_connectivity_radius", "particle_type_names", "format_version",
                "shard_arguments"):
        keep.pop(key)
    files = {(k, split): split_file(s, split) for k, s in enumerate(shards) for split in SPLITS
             if (s / f"{split}.h5").is_file()}
    with DatasetWriter(out, dim=first["dim"], dt=first["dt"], bounds=first["bounds"],
                       connectivity_radius=first["default_connectivity_radius"], metadata=keep) as writer:
        for split in SPLITS:
            count = sum(len(f) for (k, s), f in files.items() if s == split)
            for i in range(count):
                trajectory = files[(i % total, split)][i // total]
                writer.add(split, trajectory.position, trajectory.particle_type, **trajectory.extras)
    shutil.rmtree(out / ".shards")
    return out


_terminated = False


class Terminated(BaseException):
    """SIGTERM, raised where the run is, so that every writer discards its partial file.

    Not KeyboardInterrupt: CPython exits by SIGINT, whatever main returns, once a KeyboardInterrupt
    has crossed a PyRun_* call of some library (the exit code read -2, not 130, in half the runs).
    """


def _interrupt(signum, frame):
    global _terminated
    _terminated = True
    raise Terminated


def _parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        return (int(rank), int(world)) if rank is not None and world is not None else (0, 1)
    try:
        index, total = (int(t) for t in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard: expected K/N with integers, got {text!r}") from None
    if not 0 <= index < total:
        raise ValueError(f"--shard: need 0 <= K < N, got {text!r}")
    return index, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.generate",
                                     description="Simulate a recipe (see --list) or a scene file into a dataset folder.")
    parser.add_argument("name", nargs="?", help="recipe name (see --list)")
    parser.add_argument("--list", action="store_true", help="print the recipes and exit")
    parser.add_argument("--scene", help="simulate this scene file (JSON or YAML) instead of a recipe")
    parser.add_argument("--scene-from", nargs=2, metavar=("FORMAT", "PATH"),
                        help="re-run another simulator's input: `taichi_mpm FILE_OR_FOLDER` (geoelements' sand)")
    parser.add_argument("--out", help="output folder (default datasets/NAME)")
    parser.add_argument("--size", choices=["small", "paper"], default="small",
                        help="small: minutes on a laptop; paper: the published dataset's size")
    for split in SPLITS:
        parser.add_argument(f"--num-{split}", type=int, help=f"{split} trajectories (default: from --size)")
    parser.add_argument("--frames", type=int, help="frames per trajectory (default: from the recipe)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", help="warp device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument("--shard", help="K/N: build only this worker's share (default: RANK/WORLD_SIZE if set)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into --out even if it holds files that are not a dataset generate wrote")
    args = parser.parse_args(argv)
    # A terminated run unwinds like Ctrl-C, so that the writer removes its temporary files.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.list:
            width = max(map(len, RECIPES))
            for recipe in RECIPES.values():
                small = recipe.sizes["small"]
                print(f"{recipe.name:<{width}}  {recipe.description}; small: {small.particles[0]}-{small.particles[1]} "
                      f"particles, {recipe.frames['small']} frames, {'/'.join(map(str, small.splits))} trajectories")
            return 0
        if args.scene:
            out = generate_scene(args.scene, args.out or f"datasets/{Path(args.scene).stem}", args.device,
                                 args.overwrite)
            print(out)
            return 0
        if args.scene_from:
            form, path = args.scene_from
            if form not in SCENE_FORMATS:
                raise ValueError(f"--scene-from: unknown format {form!r} (known: {', '.join(SCENE_FORMATS)})")
            print(generate_from_taichi(path, args.out or f"datasets/{Path(path).stem}", args.device, args.seed))
            return 0
        if args.name is None:
            raise ValueError("give a recipe NAME, --scene FILE, --scene-from FORMAT PATH or --list")
        if args.name not in RECIPES:
            raise ValueError(f"unknown recipe {args.name!r} (known: {', '.join(RECIPES)})")
        splits = {s: getattr(args, f"num_{s}") for s in SPLITS if getattr(args, f"num_{s}") is not None}
        if any(n < 0 for n in splits.values()):
            raise ValueError("--num-train/--num-valid/--num-test must be >= 0")
        if args.frames is not None and args.frames < 7:
            raise ValueError("--frames must be >= 7 (the GNS needs 6 input frames and a target)")
        print(generate(args.name, args.out or f"datasets/{args.name}", size=args.size, splits=splits,
                       frames=args.frames, seed=args.seed, device=args.device, shard=_parse_shard(args.shard),
                       overwrite=args.overwrite))
        return 0
    except (ValueError, SceneError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SimulationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated):
        print("error: interrupted; no partial file was kept, rerun to start again", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
