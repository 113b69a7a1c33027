"""Sizes checked before allocating: nothing may take more than the memory limit, half of this
machine's memory unless the environment variable GNSIM_MEMORY_LIMIT gives another (in GiB)."""

from __future__ import annotations

import math
import os

LIMIT_VARIABLE = "GNSIM_MEMORY_LIMIT"


def machine_memory() -> int:
    """Bytes of physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _override() -> float | None:
    """GNSIM_MEMORY_LIMIT in bytes, None when unset, NaN when not a positive number."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    if not text:
        return None
    try:
        gib = float(text)
    except ValueError:
        gib = math.nan
    return gib * 2**30 if math.isfinite(gib) and gib > 0 else math.nan


def too_big(size: float) -> str | None:
    """Why `size` bytes may not be allocated, or None when they may."""
    limit = _override()
    if limit is not None and math.isnan(limit):  # refused, so that every caller says it in its one line
        return f"cannot be checked: {LIMIT_VARIABLE}={os.environ[LIMIT_VARIABLE]!r} is not a positive number of GiB"
    if limit is not None:
        if size <= limit:
            return None
        return f"would need {size / 2**30:.3g} GiB, more than the {limit / 2**30:.3g} GiB {LIMIT_VARIABLE}"
    memory = machine_memory()
    if size <= memory / 2:
        return None
    return (f"would need {size / 2**30:.3g} GiB, more than half of this machine's {memory / 2**30:.3g} GiB "
            "of memory")
