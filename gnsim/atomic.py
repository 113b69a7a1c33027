"""Files written whole or not at all: each writer writes to a temporary name beside the target,
`.NAME.partial-PID`, and renames it into place; a file that exists under its own name is whole.

The temporary name is predictable, so whatever already lies there (a killed writer's leftover of
the same pid, or a link planted to redirect the write onto another file) is removed as itself,
never followed, and the temporary is then created exclusively (O_EXCL | O_NOFOLLOW, mkdir).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PARTIAL = ".partial-"
LOCK_WRITE_SECONDS = 60  # a lock still empty after this long was never going to name its holder


def temporary_path(path: Path, suffix: str = "") -> Path:
    """The temporary name this process writes `path` under (`suffix` keeps a format's extension)."""
    return path.with_name(f".{path.name}{PARTIAL}{os.getpid()}{suffix}")


def clear(path: Path) -> None:
    """Remove what lies at `path` (a link as itself, a folder with what it holds); nothing if absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def create_exclusively(path: Path) -> int:
    """A write descriptor of the new, empty file `path`, after clearing the name; never a link's target."""
    clear(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)


def temporary_folder(path: Path) -> Path:
    """The new, empty temporary folder to build the folder `path` in."""
    staging = temporary_path(Path(path))
    clear(staging)
    staging.mkdir()  # fails on anything that appeared meanwhile, a link included
    return staging


@contextmanager
def _renamed(temporary: Path, path: Path) -> Iterator[None]:
    """Rename `temporary` to `path` when the block ends without an error; remove it when it raises."""
    try:
        yield
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """The temporary name, created empty, to write the file `path` under (for writers that open
    a name), renamed into place when the block ends without an error."""
    temporary = temporary_path(Path(path), suffix)
    with _renamed(temporary, path):
        os.close(create_exclusively(temporary))
        yield temporary


@contextmanager
def writing(path: Path) -> Iterator[BinaryIO]:
    """A binary file open on the new temporary of `path`, through the descriptor that created it,
    renamed into place when the block ends without an error."""
    temporary = temporary_path(Path(path))
    with _renamed(temporary, path), os.fdopen(create_exclusively(temporary), "wb") as file:
        yield file


@contextmanager
def replacing_folder(path: Path) -> Iterator[Path]:
    """A new temporary folder to build the folder `path` in: put in place of `path` when the block
    ends without an error (the old folder removed whole, so none of its files outlive it), and
    removed when it raises."""
    path = Path(path)
    staging = temporary_folder(path)
    old = temporary_path(path, ".old")
    try:
        yield staging
        if path.exists():
            clear(old)
            os.replace(path, old)
        os.replace(staging, path)
        clear(old)
    finally:
        clear(staging)


def write_atomic(path: Path, content: bytes) -> None:
    with writing(path) as file:
        file.write(content)


def write_json_atomic(path: Path, content: dict) -> None:
    write_atomic(path, (json.dumps(content, indent=2) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def take_lock(path: Path) -> bool:
    """Create the lock file `path`, naming this host and pid; False while another live process
    holds it. A lock whose process on this host is gone (killed while holding it) is taken over."""
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            if not _abandoned(path):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(f"{socket.gethostname()} {os.getpid()}\n")
        return True
    return False


def _abandoned(lock: Path) -> bool:
    """Whether the process that took `lock` is gone. One on another host cannot be asked (it may
    live); an empty lock is a holder between creating and writing it, unless it is old."""
    try:
        host, pid = lock.read_text().split()
    except (OSError, ValueError):
        return time.time() - lock.stat().st_mtime > LOCK_WRITE_SECONDS if lock.exists() else True
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the temporary files and folders in `folder` that a killed process left behind (its
    pid no longer runs); those of live processes, e.g. a second writer, are left alone."""
    removed = []
    for path in Path(folder).glob(f".*{PARTIAL}*") if Path(folder).is_dir() else []:
        pid = path.name.rsplit(PARTIAL, 1)[1].split(".")[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        clear(path)
        removed.append(path)
    return removed
