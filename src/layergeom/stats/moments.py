"""Mergeable float64 moments of vectors grouped by an integer key (for example a token type).

Per group: count n, mean vector, S = sum of squared deviations from the mean and q = sum of squared
norms. Chunks and partial accumulators combine with Chan's pairwise rule, so the result does not
depend on how the rows were split or in which order the parts were merged (up to float64 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from layergeom.stats.device import is_tensor, like, row_sq_norms, to_numpy, zeros

# Rows per step of the deviation pass: small enough that the step's temporaries stay in cache.
_DEVIATION_ROWS = 128


@dataclass(frozen=True)
class Moments:
    """Moments of the groups seen, sorted by key: ids (k,), n (k,), mean (k, d), s (k,), q (k,)."""

    ids: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    s: np.ndarray
    q: np.ndarray

    @classmethod
    def empty(cls, d: int) -> Moments:
        """Moments of no group in dimension ``d``."""
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, d)), np.empty(0), np.empty(0))

    @property
    def d(self) -> int:
        """Dimension of the vectors."""
        return int(self.mean.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, keep: np.ndarray) -> Moments:
        """The groups picked by a boolean mask or a sorted index array."""
        return Moments(self.ids[keep], self.n[keep], self.mean[keep], self.s[keep], self.q[keep])

    def qmv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per group Q = q/n (mean squared norm), M = ||mean||^2 and V = S/n (total variance)."""
        n = self.n.astype(np.float64)
        return self.q / n, np.einsum("ij,ij->i", self.mean, self.mean), self.s / n


def _grouping(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, group starts in it, counts and the group index of every row, for host ``keys``."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    counts = np.diff(np.append(starts, len(keys)))
    group = np.empty(len(keys), np.int64)
    group[order] = np.repeat(np.arange(len(starts)), counts)
    return order, starts, counts, group


def chunk_moments(x, keys: np.ndarray) -> Moments:
    """Exact two-pass moments of the rows of ``x`` (n, d) grouped by ``keys`` (n,), in float64.

    A torch ``x`` stays on its device (mean, s, q are tensors there); a numpy ``x`` gives numpy moments.
    """
    keys = np.asarray(keys, dtype=np.int64)
    if is_tensor(x):
        return _tensor_chunk_moments(x, keys)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or keys.shape != (x.shape[0],):
        raise ValueError(f"need x of shape (n, d) and keys of shape (n,), got {x.shape}, {keys.shape}")
    rows = len(keys)
    if rows == 0:
        return Moments.empty(x.shape[1])
    order, starts, counts, group = _grouping(keys)
    k = len(starts)
    # Group sums as a sparse one-hot product: one pass over x, no gather of the rows.
    onehot = sp.csr_array((np.ones(rows), order, np.append(starts, rows)), shape=(k, rows))
    mean = onehot @ x
    mean /= counts[:, None]
    row_q = np.einsum("ij,ij->i", x, x)
    row_s = np.empty(rows)
    work = np.empty((min(rows, _DEVIATION_ROWS), x.shape[1]))
    for lo in range(0, rows, _DEVIATION_ROWS):
        hi = min(lo + _DEVIATION_ROWS, rows)
        dev = np.take(mean, group[lo:hi], axis=0, out=work[: hi - lo])
        np.subtract(x[lo:hi], dev, out=dev)
        row_s[lo:hi] = np.einsum("ij,ij->i", dev, dev)
    return Moments(
        keys[order][starts],
        counts.astype(np.int64),
        mean,
        np.bincount(group, row_s, k),
        np.bincount(group, row_q, k),
    )


def _tensor_chunk_moments(x, keys: np.ndarray) -> Moments:
    """:func:`chunk_moments` of a float64 torch ``x`` on its own device (the keys' grouping is done on the host)."""
    if x.ndim != 2 or keys.shape != (x.shape[0],):
        raise ValueError(f"need x of shape (n, d) and keys of shape (n,), got {tuple(x.shape)}, {keys.shape}")
    order, starts, counts, group = _grouping(keys)
    k, index = len(starts), like(group, x)
    mean = zeros((k, x.shape[1]), x).index_add_(0, index, x) / like(counts, x)[:, None]
    dev = x - mean[index]
    s = zeros((k,), x).index_add_(0, index, row_sq_norms(dev))
    q = zeros((k,), x).index_add_(0, index, row_sq_norms(x))
    return Moments(keys[order][starts], counts.astype(np.int64), mean, s, q)


class GroupedMoments:
    """Running float64 moments per group key; memory grows with the groups seen, not the rows.

    ``keys`` gives the group of every token-table row, so that ``update`` takes blocks by their rows.
    """

    def __init__(self, d: int, keys: np.ndarray | None = None, capacity: int = 0) -> None:
        """Empty moments in dimension ``d``; ``capacity`` groups are reserved up front."""
        self.d = int(d)
        self.keys = keys
        self._keys = np.empty(0, np.int64)  # sorted keys seen so far
        self._slots = np.empty(0, np.int64)  # storage row of each sorted key
        self._n = np.zeros(0, np.int64)
        self._mean = np.zeros((0, self.d))
        self._s = np.zeros(0)
        self._q = np.zeros(0)
        self._reserve(capacity)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_moments(cls, moments: Moments) -> GroupedMoments:
        """An accumulator starting from saved moments."""
        acc = cls(moments.d)
        acc.merge(moments)
        return acc

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        """Add a block ``values`` (n, d) of the token-table ``rows`` (n,), grouped by ``keys[rows]``."""
        if self.keys is None:
            raise ValueError("these moments were loaded from a partial; they take merges, not blocks")
        block = chunk_moments(values, self.keys[rows])
        if len(self) == 0 and len(block) and not is_tensor(block.mean):
            self._adopt(block, own=True)
            return
        self.merge(block)

    def state(self) -> dict[str, np.ndarray]:
        """ids, n, mean, s and q of the groups seen."""
        moments = self.moments()
        return {
            "ids": moments.ids,
            "n": moments.n,
            "mean": to_numpy(moments.mean),
            "s": to_numpy(moments.s),
            "q": to_numpy(moments.q),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> GroupedMoments:
        """Rebuild from :meth:`state`."""
        return cls.from_moments(Moments(state["ids"], state["n"], state["mean"], state["s"], state["q"]))

    def finalize(self) -> Moments:
        """The moments of every group seen, sorted by key (host arrays)."""
        return Moments(**self.state())

    def merge(self, other: Moments | GroupedMoments) -> None:
        """Merge another accumulator or saved moments into this one (Chan's pairwise rule)."""
        if isinstance(other, GroupedMoments):
            other = other.moments()
        if other.d != self.d:
            raise ValueError(f"cannot merge moments of dimension {other.d} into dimension {self.d}")
        if len(other) == 0:
            return
        if is_tensor(other.mean) and not is_tensor(self._mean):
            self._mean, self._s, self._q = (like(a, other.mean) for a in (self._mean, self._s, self._q))
        if len(self) == 0:
            self._adopt(other)
            return
        slots = self._slots_for(other.ids)
        na = self._n[slots].astype(np.float64)
        nb = other.n.astype(np.float64)
        total = na + nb
        index = like(slots, self._mean)
        mean = self._mean[index]
        delta = like(other.mean, mean) - mean
        self._s[index] += like(other.s, self._s) + row_sq_norms(delta) * like(na * nb / total, self._s)
        delta *= like(nb / total, delta)[:, None]
        mean += delta
        self._mean[index] = mean
        self._q[index] += like(other.q, self._q)
        self._n[slots] += other.n

    def _adopt(self, other: Moments, own: bool = False) -> None:
        """Start from ``other``'s groups (this accumulator has none yet); with ``own``, take its numpy arrays as they
        are (a block's fresh moments: no copy)."""
        if own:
            self._keys, self._slots, self._n = other.ids, np.arange(len(other)), other.n
            self._mean, self._s, self._q = other.mean, other.s, other.q
            return
        k = len(other)
        self._reserve(k)
        self._keys, self._slots = other.ids.copy(), np.arange(k)
        self._n[:k] = other.n
        for name, value in (("_mean", other.mean), ("_s", other.s), ("_q", other.q)):
            getattr(self, name)[:k] = like(value, self._mean)

    def moments(self) -> Moments:
        """A compact copy of the moments of every group seen, sorted by key."""
        slots, index = self._slots, like(self._slots, self._mean)
        return Moments(self._keys.copy(), self._n[slots], self._mean[index], self._s[index], self._q[index])

    def _slots_for(self, keys: np.ndarray) -> np.ndarray:
        """Storage rows of sorted unique ``keys``, adding zeroed rows for keys not seen yet."""
        pos = np.searchsorted(self._keys, keys)
        known = pos < len(self._keys)
        known[known] = self._keys[pos[known]] == keys[known]
        new = ~known
        if new.any():
            used = len(self._keys)
            added = int(new.sum())
            self._reserve(used + added)
            self._keys = np.insert(self._keys, pos[new], keys[new])
            self._slots = np.insert(self._slots, pos[new], np.arange(used, used + added))
            pos = np.searchsorted(self._keys, keys)
        return self._slots[pos]

    def _reserve(self, rows: int) -> None:
        """Grow the storage (doubling) so that it holds at least ``rows`` groups."""
        capacity = len(self._n)
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity)
        used = len(self._keys)
        for name in ("_n", "_mean", "_s", "_q"):
            old = getattr(self, name)
            shape = (capacity, *old.shape[1:])
            new = np.zeros(shape, old.dtype) if name == "_n" else zeros(shape, old)  # zero pages are mapped lazily
            new[:used] = old[:used]
            setattr(self, name, new)
