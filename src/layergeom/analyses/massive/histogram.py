"""A streamed fixed-bin histogram of |x| over every entry of a layer's selected tokens, and its median bin."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from layergeom.stats.device import dtype_name, is_tensor, like, namespace, on_host, to_numpy

if TYPE_CHECKING:
    from layergeom.stats.device import Values

LOW, HIGH, BINS = 1e-8, 1e8, 1600  # log-spaced bins over [LOW, HIGH): 100 per decade
EDGES = np.logspace(math.log10(LOW), math.log10(HIGH), BINS + 1)
RESOLUTION = float(EDGES[1] / EDGES[0] - 1)  # relative bin width: hi / lo - 1 = 10 ** 0.01 - 1, about 2.3%
BOUNDS = np.concatenate(([-np.inf], EDGES, [np.inf]))  # slot i holds BOUNDS[i] <= |x| < BOUNDS[i + 1]
KEY_BITS = 12  # leading mantissa bits of a key: its range spans at most 2 ** -12 of an octave, a bin about 1 / 30
MAGNITUDE = {4: 0x7FFF_FFFF, 8: 0x7FFF_FFFF_FFFF_FFFF}  # the bits of |x| in a float of 4 or 8 bytes: all but the sign


@dataclass(frozen=True)
class KeyTable:
    """Slots by key for one float dtype. A key is the bits of |x| (ordered as |x| is) less ``base``, shifted right
    by ``shift`` and clipped to the table; no key's range holds two edges, so an entry's slot is its key's plus one
    where an edge lies inside the range and |x| reaches it."""

    shift: int
    base: int
    slot: np.ndarray  # slot of each key's smallest |x|: 0 for the first key, BINS + 1 for the last
    split: np.ndarray  # whether an edge lies inside the key's range
    threshold: np.ndarray  # bits of the smallest |x| of the dtype at or above that edge
    runs: np.ndarray  # the first key of each slot (slots grow with keys)


@functools.cache
def key_table(dtype: str) -> KeyTable:
    """The key table of ``"float32"`` or ``"float64"``: keys from just below LOW to just above HIGH."""
    floats = np.dtype(dtype)
    ints = np.dtype(f"int{8 * floats.itemsize}")
    shift = np.finfo(floats).nmant - KEY_BITS
    low, high = np.array([LOW, HIGH], floats).view(ints) >> shift
    keys = np.arange(low - 1, high + 3, dtype=ints)  # each key's start and the end of the last
    start = (keys << shift).view(floats).astype(np.float64)
    slot = np.searchsorted(EDGES, start[:-1], side="right")
    edge = BOUNDS[slot + 1]  # the first edge above the key's smallest |x|
    threshold = edge.astype(floats)
    threshold = np.where(threshold < edge, np.nextafter(threshold, floats.type(np.inf)), threshold)
    runs = np.flatnonzero(np.diff(slot, prepend=-1))
    return KeyTable(shift, int(keys[0]) << shift, slot, edge < start[1:], threshold.view(ints), runs)


def floats(values) -> Values:
    """``values`` flat as float32 or float64 (other types widened to float64): numpy, viewing a CPU tensor's
    memory, or a tensor on its device."""
    values = on_host(values)
    values = values if is_tensor(values) else np.asarray(values)
    if dtype_name(values) not in ("float32", "float64"):
        values = values.double() if is_tensor(values) else values.astype(np.float64)
    return values.reshape(-1)


def key_counts(flat: Values, table: KeyTable) -> tuple[np.ndarray, np.ndarray]:
    """Entries per key of flat float32 or float64 values (numpy, or a tensor counted on its device), and the keys
    of the entries at or above the edge inside their key's range; both on the host."""
    xp, magnitude = namespace(flat), MAGNITUDE[flat.itemsize]
    signed = flat.view(getattr(xp, f"int{8 * flat.itemsize}"))
    key = signed & magnitude
    key -= table.base
    key >>= table.shift
    xp.clip(key, 0, len(table.slot) - 1, out=key)
    inside = xp.where(like(table.split, key)[key])[0]
    split = to_numpy(key[inside])
    reached = to_numpy(signed[inside] & magnitude) >= table.threshold[split]
    return to_numpy(xp.bincount(key, minlength=len(table.slot))), split[reached]


def flat_counts(flat: Values) -> np.ndarray:
    """:func:`bin_counts` of flat float32 or float64 values, numpy or a tensor."""
    table = key_table(dtype_name(flat))
    by_key, reached = key_counts(flat, table)
    counts = np.zeros(BINS + 2, np.int64)
    counts[table.slot[table.runs]] = np.add.reduceat(by_key, table.runs)
    up = table.slot[reached]
    return counts + np.bincount(up + 1, minlength=BINS + 2) - np.bincount(up, minlength=BINS + 2)


def bin_counts(values) -> np.ndarray:
    """Counts of |x| per slot: 0 underflow (< LOW), 1..BINS the bins [EDGES[i-1], EDGES[i]), BINS + 1 overflow;
    the same as ``np.searchsorted(EDGES, |x|, side="right")``, from the keys of :class:`KeyTable`."""
    return flat_counts(floats(values))


def bin_edges(slot: int) -> tuple[float, float]:
    """(lo, hi) of a slot of :func:`bin_counts`: [0, LOW) for the underflow, [HIGH, inf) for the overflow."""
    lo = 0.0 if slot == 0 else float(EDGES[slot - 1])
    hi = math.inf if slot == BINS + 1 else float(EDGES[slot])
    return lo, hi


class AbsHistogram:
    """Counts of |x| in the fixed log-spaced bins, with underflow and overflow counts."""

    def __init__(self, counts: np.ndarray | None = None) -> None:
        self.counts = np.zeros(BINS + 2, np.int64) if counts is None else np.asarray(counts, dtype=np.int64)

    def update(self, values, rows: np.ndarray) -> None:
        """Count a block's entries."""
        if values.shape[0]:
            self.counts += bin_counts(values)

    def merge(self, other: AbsHistogram) -> None:
        """Add another shard's counts."""
        self.counts += other.counts

    def state(self) -> dict[str, np.ndarray]:
        """The counts."""
        return {"counts": self.counts}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> AbsHistogram:
        """Rebuild from :meth:`state`."""
        return cls(state["counts"])

    def finalize(self) -> dict[str, float]:
        """n_entries and the bin of the median (the ceil(n/2)-th smallest |x|): its edges median_lo, median_hi and
        median_abs, their geometric centre (the finite edge for the underflow or overflow)."""
        n = int(self.counts.sum())
        if n == 0:
            return {"n_entries": 0, "median_abs": math.nan, "median_lo": math.nan, "median_hi": math.nan}
        slot = int(np.searchsorted(np.cumsum(self.counts), (n + 1) // 2))
        lo, hi = bin_edges(slot)
        centre = hi if lo == 0 else lo if math.isinf(hi) else math.sqrt(lo * hi)
        return {"n_entries": n, "median_abs": centre, "median_lo": lo, "median_hi": hi}
