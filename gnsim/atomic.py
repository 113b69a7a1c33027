"""Files written whole or not at all: each writer writes to a temporary name beside the target,
`.NAME.partial-PID`, and renames it into place; a file that exists under its own name is whole."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL = ".partial-"


def temporary_path(path: Path, suffix: str = "") -> Path:
    """The temporary name this process writes `path` under (`suffix` keeps a format's extension)."""
    return path.with_name(f".{path.name}{PARTIAL}{os.getpid()}{suffix}")


@contextmanager
def replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """The temporary name to write the file `path` under: renamed into place when the block ends
    without an error, and removed when it raises."""
    temporary = temporary_path(Path(path), suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: Path, content: bytes) -> None:
    with replacing(path) as temporary:
        temporary.write_bytes(content)


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


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the temporary files and folders in `folder` that a killed process left behind (its
    pid no longer runs); those of live processes, e.g. a second writer, are left alone."""
    removed = []
    for path in Path(folder).glob(f".*{PARTIAL}*") if Path(folder).is_dir() else []:
        pid = path.name.rsplit(PARTIAL, 1)[1].split(".")[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed
