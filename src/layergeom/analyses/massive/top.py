"""Exact streamed top entries of a layer: the ``keep`` largest |x| with their token row and dimension."""

from __future__ import annotations

import numpy as np

from layergeom.stats.device import is_tensor, on_host, to_numpy

KEEP = 100  # entries kept per layer; ``massive.top_k`` (at most this) of them are reported


def candidates(values, m: int, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Every entry of ``values`` (n, d; numpy or torch) whose |x| reaches its m-th largest, as (value, flat index)
    in float64 on the host: a superset of any tie-broken top m. On the host, when fewer than m entries reach
    ``floor`` (the smallest |x| already kept: nothing below it can enter), those entries instead."""
    values = on_host(values)
    if is_tensor(values):
        return device_candidates(values, m)
    magnitude = np.abs(values)
    m = min(m, magnitude.size)
    floor = floor or row_floor(magnitude, m)
    flat, magnitude = np.asarray(values).ravel(), magnitude.ravel()
    index = np.flatnonzero(magnitude >= floor)
    if index.size > m:
        reaching = magnitude[index]
        index = index[reaching >= np.partition(reaching, index.size - m)[index.size - m]]
    return flat[index].astype(np.float64), index.astype(np.int64)


def row_floor(magnitude: np.ndarray, m: int) -> float:
    """A floor under the m-th largest of ``magnitude`` (n, d): its m-th largest row maximum (those m rows' maxima
    reach it), or 0 with fewer than m rows."""
    n = len(magnitude)
    return float(np.partition(magnitude.max(1), n - m)[n - m]) if n >= m else 0.0


def device_candidates(values, m: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`candidates` of a tensor, found on its device."""
    import torch

    flat = values.flatten()
    magnitude = flat.abs()
    m = min(m, flat.numel())
    threshold = torch.topk(magnitude, m, sorted=False).values.min()
    index = torch.nonzero(magnitude >= threshold).flatten()
    return to_numpy(flat[index]).astype(np.float64), to_numpy(index).astype(np.int64)


class TopEntries:
    """The ``keep`` entries of largest |x| seen, ordered by |x| descending, then token row, then dimension, so
    that the result does not depend on the blocks or the order of merges."""

    def __init__(self, keep: int = KEEP, value=None, row=None, dim=None) -> None:
        self.keep = keep
        self.value = np.empty(0) if value is None else np.asarray(value, dtype=np.float64)
        self.row = np.empty(0, np.int64) if row is None else np.asarray(row, dtype=np.int64)
        self.dim = np.empty(0, np.int64) if dim is None else np.asarray(dim, dtype=np.int64)

    def update(self, values, rows: np.ndarray) -> None:
        """Take a block's largest entries; ``rows`` are the token-table rows of its rows."""
        if values.shape[0] == 0:
            return
        floor = float(np.abs(self.value).min()) if len(self.value) == self.keep else 0.0
        value, flat = candidates(values, self.keep, floor)
        d = values.shape[1]
        self.take(value, np.asarray(rows, dtype=np.int64)[flat // d], flat % d)

    def take(self, value: np.ndarray, row: np.ndarray, dim: np.ndarray) -> None:
        """Keep the ``keep`` first of the entries held and these, in the order of the class."""
        value = np.concatenate((self.value, value))
        row, dim = np.concatenate((self.row, row)), np.concatenate((self.dim, dim))
        order = np.lexsort((dim, row, -np.abs(value)))[: self.keep]
        self.value, self.row, self.dim = value[order], row[order], dim[order]

    def merge(self, other: TopEntries) -> None:
        """Fold another shard's entries in."""
        self.take(other.value, other.row, other.dim)

    def state(self) -> dict[str, np.ndarray]:
        """The capacity and the entries."""
        return {"keep": np.int64(self.keep), "value": self.value, "row": self.row, "dim": self.dim}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> TopEntries:
        """Rebuild from :meth:`state`."""
        return cls(int(state["keep"]), state["value"], state["row"], state["dim"])

    def finalize(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value, row, dim) of the entries, largest |x| first."""
        return self.value, self.row, self.dim
