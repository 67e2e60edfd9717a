"""Keep resident memory flat across many differently shaped batches."""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def limit_heap_retention(threshold: int = 64 * 1024) -> bool:
    """Serve allocations above ``threshold`` bytes by mmap so freed tensors go back to the OS.

    glibc otherwise raises its mmap threshold after each large free and keeps the memory in the
    heap, so peak memory creeps up with the number of batches. Returns False where not glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
