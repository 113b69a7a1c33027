"""Sizes checked before allocating: nothing may take more than half of this machine's memory."""

from __future__ import annotations

import os


def machine_memory() -> int:
    """Bytes of physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def too_big(size: float) -> str | None:
    """Why `size` bytes may not be allocated, or None when they may."""
    memory = machine_memory()
    if size <= memory / 2:
        return None
    return f"would need {size / 2**30:.3g} GiB, more than half of this machine's {memory / 2**30:.3g} GiB of memory"
