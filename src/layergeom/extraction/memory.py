"""Keep resident memory flat across many differently shaped batches."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
RETENTION_THRESHOLD = 64 * 1024


@cache
def _libc() -> ctypes.CDLL | None:
    """glibc (loaded once), or None where there is none."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def limit_heap_retention(threshold: int = RETENTION_THRESHOLD) -> bool:
    """Serve allocations above ``threshold`` bytes by mmap so freed tensors go back to the OS.

    glibc otherwise raises its mmap threshold after each large free and keeps the memory in the
    heap, so peak memory creeps up with the number of batches. Returns False where not glibc.
    """
    libc = _libc()
    try:
        return bool(libc and libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except AttributeError:
        return False


@contextmanager
def reuse_heap(limit: int = 1 << 30) -> Iterator[None]:
    """Inside: allocations up to ``limit`` come from the heap, and freed ones stay there for the next of the same
    size, so repeated temporaries (a fused pass's activations and the accumulators' work on each block and layer)
    do not fault fresh pages in.
    On leaving: back to :func:`limit_heap_retention` and the free heap is returned to the OS."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, limit)
    libc.mallopt(M_TRIM_THRESHOLD, limit)
    try:
        yield
    finally:
        libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)  # glibc's default
        libc.mallopt(M_MMAP_THRESHOLD, RETENTION_THRESHOLD)
        libc.malloc_trim(0)
