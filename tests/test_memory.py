"""The heap settings of extraction jobs, observed through this process's resident memory."""

import numpy as np
import pytest

from layergeom.extraction.memory import _libc, reuse_heap

MB = 1 << 20


def resident_mb() -> float:
    """This process's resident memory (Linux /proc)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / MB


@pytest.mark.skipif(_libc() is None, reason="needs glibc")
def test_reuse_heap_keeps_temporaries_inside_and_returns_them_on_leaving():
    before = resident_mb()
    with reuse_heap():
        for _ in range(3):
            block = np.ones(200 * MB // 8)  # written, so its pages are resident
            del block
        inside = resident_mb()
    after = resident_mb()
    assert inside - before > 150  # the freed temporary stays in the heap for the next one
    assert after - before < 50  # and goes back to the OS on leaving
