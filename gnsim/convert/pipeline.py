"""Format detection, conversion into our format and out of it, and the cache of a foreign one.

Every output folder is built under a temporary name beside its destination and renamed into
place when whole, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm import tqdm

from gnsim.atomic import replacing_folder, temporary_folder, write_json_atomic
from gnsim.convert import lagrangebench, npz, taichi_mpm, tfrecord
from gnsim.convert.source import Source
from gnsim.dataset import SPLITS, DatasetError, DatasetWriter

READERS = {"tfrecord": tfrecord.read, "npz": npz.read, "lagrangebench": lagrangebench.read,
           "taichi_mpm": taichi_mpm.read}
WRITERS = {"tfrecord": tfrecord.write, "npz": npz.write}
SOURCE_FORMATS = ("gnsim", *READERS)
TARGET_FORMATS = ("gnsim", *WRITERS)
DESCRIPTIONS = {
    "gnsim": "gnsim",
    "tfrecord": "DeepMind TFRecord",
    "npz": "gns npz",
    "lagrangebench": "LagrangeBench",
    "taichi_mpm": "geoelements taichi_mpm",
}


def progress_bar(iterable: Iterable, **options) -> Iterable:
    """tqdm, quiet when not on a terminal."""
    return tqdm(iterable, disable=None, unit="trajectory", leave=False, **options)


def detect_format(folder: str | os.PathLike) -> str:
    """The format of a dataset folder: 'gnsim', 'tfrecord', 'npz', 'lagrangebench' or 'taichi_mpm'."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    try:
        if "format_version" in json.loads((folder / "metadata.json").read_text()):
            return "gnsim"
    except (OSError, ValueError):
        pass  # no metadata.json, or not ours: look at the split files
    for name, suffix in (
        ("tfrecord", tfrecord.SUFFIX),
        ("npz", npz.SUFFIX),
        ("lagrangebench", lagrangebench.SUFFIX),
    ):
        if any((folder / f"{split}{suffix}").is_file() for split in SPLITS):
            return name
    if taichi_mpm.detect(folder):
        return "taichi_mpm"
    raise DatasetError(
        f"{folder}: unknown format (no gnsim metadata.json, and no {{train,valid,test}} "
        ".tfrecord, .npz or .h5 files, no trajectoryK.npz beside inputs_2d_K.json; name one with --from)"
    )


def fingerprint(folder: Path) -> list:
    """Name, size and modification time of each file in `folder`: changes when the source does."""
    return [
        [path.name, path.stat().st_size, path.stat().st_mtime_ns]
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
    ]


def import_source(
    source: Source, folder: Path, progress: Callable[..., Iterable] = progress_bar
) -> None:
    """Stream every trajectory of `source` into our format at `folder`."""
    try:
        writer = DatasetWriter(folder, dim=source.dim, dt=source.dt, bounds=source.bounds,
                               connectivity_radius=source.connectivity_radius, metadata=source.metadata)
    except DatasetError as error:  # it names our metadata.json; the field came from theirs
        raise DatasetError(f"{source.folder / 'metadata.json'}: {str(error).split(': ', 1)[-1]}") from None
    with writer:
        for split, path in source.splits.items():
            count, trajectories = source.trajectories(split)
            for index, trajectory in enumerate(progress(trajectories, total=count, desc=path.name)):
                try:
                    writer.add(
                        split, trajectory.position, trajectory.particle_type, **trajectory.extras
                    )
                except DatasetError as error:  # it names our file; name theirs
                    raise DatasetError(
                        f"{path} record {index}: {str(error).split(': ', 1)[-1]}"
                    ) from None
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["source"] = {
        **source.provenance(),
        "path": str(source.folder.resolve()),
        "fingerprint": fingerprint(source.folder),
    }
    write_json_atomic(folder / "metadata.json", metadata)


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    from_format: str | None = None,
    to: str = "gnsim",
    progress: Callable[..., Iterable] = progress_bar,
) -> Path:
    """Convert the dataset folder `src` into a new folder `dst` in format `to`; return `dst`."""
    src, dst = Path(src), Path(dst)
    if to not in TARGET_FORMATS:
        raise DatasetError(f"unknown target format {to!r} (known: {', '.join(TARGET_FORMATS)})")
    if from_format is not None and from_format not in SOURCE_FORMATS:
        raise DatasetError(
            f"unknown source format {from_format!r} (known: {', '.join(SOURCE_FORMATS)})"
        )
    if not src.is_dir():
        raise DatasetError(f"{src}: not a folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DatasetError(f"{dst}: already exists and is not empty")
    source_format = from_format or detect_format(src)
    if source_format == to:
        raise DatasetError(f"{src}: is already a {DESCRIPTIONS[to]} dataset")
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_folder(dst)
    try:
        if source_format == "gnsim":
            ours, source = src, None
        else:
            ours, source = (
                staging / ("result" if to == "gnsim" else "gnsim"),
                READERS[source_format](src),
            )
            import_source(source, ours, progress)
        if to != "gnsim":
            (staging / "result").mkdir()
            try:
                WRITERS[to](ours, staging / "result", progress)
            except DatasetError as error:
                raise DatasetError(_in_source_terms(str(error), ours, source)) from None
        os.replace(staging / "result", dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dst


def _in_source_terms(message: str, ours: Path, source: Source | None) -> str:
    """Name the user's file and record, not our intermediate copy of it."""
    if source is None:
        return message
    pattern = re.escape(str(ours)) + r"/(train|valid|test)\.h5 trajectory (\d+)"
    return re.sub(
        pattern, lambda match: f"{source.splits[match[1]]} record {int(match[2])}", message
    )


def _cache_folders(folder: Path) -> list[Path]:
    beside = folder.parent / f"{folder.name}.gnsim"
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [beside, cache_home / "gnsim" / f"{folder.name}-{digest}"]


def _conversion_source(cache: Path) -> dict:
    """The `source` that gnsim's conversion wrote into `cache`'s metadata ({} if it is none)."""
    try:
        source = json.loads((cache / "metadata.json").read_text()).get("source", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return source if isinstance(source, dict) else {}


def _is_conversion_of(cache: Path, folder: Path) -> bool:
    return _conversion_source(cache).get("path") == str(folder.resolve())


def _is_cache_of(cache: Path, folder: Path) -> bool:
    """A conversion of `folder` as its files are now."""
    source = _conversion_source(cache)
    return source.get("path") == str(folder.resolve()) and source.get("fingerprint") == fingerprint(folder)


def ensure_dataset(
    folder: str | os.PathLike, progress: Callable[..., Iterable] = progress_bar
) -> Path:
    """`folder` if it is a gnsim dataset; else its conversion, made once into a cache beside it.

    The cache is `<folder>.gnsim/` (or, where the parent is read-only, one under ~/.cache/gnsim/)
    and is rebuilt when the source's files change. Call it on one process before the others.
    """
    folder = Path(folder)
    source_format = detect_format(folder)
    if source_format == "gnsim":
        return folder
    candidates = _cache_folders(folder)
    for cache in candidates:
        if _is_cache_of(cache, folder):
            print(
                f"using {cache}, converted from the {DESCRIPTIONS[source_format]} dataset {folder}",
                file=sys.stderr,
            )
            return cache
    # A folder already at a cache's name is rewritten only when it is a conversion of this source.
    cache = next((c for c in candidates if _writable(_existing_parent(c))
                  and (not c.exists() or _is_conversion_of(c, folder))), None)
    if cache is None:
        raise DatasetError(
            f"{folder}: needs converting, but no cache folder is writable and free of other files "
            f"({candidates[0]}, {candidates[1]})"
        )
    # Said before reading a byte of it: the user sees what is done with their files.
    print(f"converting {folder} into {cache}", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with replacing_folder(cache) as staging:  # a stale conversion of an older source is replaced whole
        convert(folder, staging, source_format, "gnsim", progress)
    print(
        f"converted the {DESCRIPTIONS[source_format]} dataset {folder} into {cache} "
        "(once: reused while the source is unchanged)",
        file=sys.stderr,
    )
    return cache


def _writable(folder: Path) -> bool:
    # A folder with no write bits is read-only by intent: root could write there, but must not.
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path
