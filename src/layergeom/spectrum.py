"""Anisotropy of one layer from streamed blocks: mean pairwise cosine and the covariance spectrum.

Every accumulator is float64, exact up to rounding, and mergeable, so token shards can be
processed anywhere in any order and merged afterwards (SPEC.md section 2).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

import numpy as np
import zarr

from layergeom.atomic import atomic_output
from layergeom.store import iter_layer, prefetched


@dataclass
class UnitSum:
    """Count and sum of unit vectors x / ||x||; vectors of norm zero have no direction and are skipped."""

    count: int
    total: np.ndarray

    @classmethod
    def empty(cls, d: int) -> UnitSum:
        return cls(0, np.zeros(d))

    def add(self, x: np.ndarray, center: np.ndarray | None = None) -> None:
        """Add the rows of ``x`` (minus ``center`` if given) as unit vectors."""
        if center is not None:
            x = x - center
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        nonzero = norms > 0
        weights = np.divide(1.0, norms, out=np.zeros_like(norms), where=nonzero)
        self.total += weights @ x
        self.count += int(np.count_nonzero(nonzero))

    def merge(self, other: UnitSum) -> UnitSum:
        return UnitSum(self.count + other.count, self.total + other.total)

    def mean_cosine(self) -> float:
        """Mean of u_i . u_j over ordered pairs i != j: (||sum u||^2 - N) / (N (N - 1))."""
        n = self.count
        if n < 2:
            return math.nan
        return float((self.total @ self.total - n) / (n * (n - 1)))


@dataclass
class Scatter:
    """Count, mean and centered scatter matrix sum (x - mean)(x - mean)^T, merged by Chan's rule."""

    count: int
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def empty(cls, d: int) -> Scatter:
        return cls(0, np.zeros(d), np.zeros((d, d)))

    def add(self, x: np.ndarray) -> None:
        """Add the rows of ``x``: center the block on its own mean, then merge."""
        if len(x) == 0:
            return
        mean = x.mean(axis=0)
        centered = x - mean
        merged = self.merge(Scatter(len(x), mean, centered.T @ centered))
        self.count, self.mean, self.scatter = merged.count, merged.mean, merged.scatter

    def merge(self, other: Scatter) -> Scatter:
        n = self.count + other.count
        if other.count == 0 or self.count == 0:
            chosen = self if other.count == 0 else other
            return Scatter(chosen.count, chosen.mean.copy(), chosen.scatter.copy())
        delta = other.mean - self.mean
        weight = self.count * other.count / n
        scatter = self.scatter + other.scatter
        scatter += np.outer(delta * weight, delta)
        return Scatter(n, self.mean + delta * (other.count / n), scatter)

    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the 1/N covariance, largest first, tiny negative rounding clipped to 0."""
        if self.count == 0:
            raise ValueError("no vectors were accumulated")
        values = np.linalg.eigvalsh(self.scatter / self.count)[::-1]
        return np.clip(values, 0.0, None)


def spectrum_measures(eigenvalues: np.ndarray, top: int = 10) -> dict:
    """sigma_1^2 / sum sigma_i^2, the top shares and the effective rank exp(entropy of the shares)."""
    total = float(eigenvalues.sum())
    if total <= 0:
        nan_shares = [math.nan] * min(top, len(eigenvalues))
        return {"sigma1_share": math.nan, "top_shares": nan_shares, "eff_rank": math.nan, "total_variance": total}
    shares = eigenvalues / total
    positive = shares[shares > 0]
    entropy = -float(np.sum(positive * np.log(positive)))
    return {
        "sigma1_share": float(shares[0]),
        "top_shares": shares[:top].tolist(),
        "eff_rank": math.exp(entropy),
        "total_variance": total,
    }


def shard_mask(mask: np.ndarray, chunk_tokens: int, shard: int, n_shards: int) -> np.ndarray:
    """The mask restricted to shard ``shard`` of ``n_shards`` contiguous chunk-aligned token ranges."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in 0..{n_shards - 1}")
    n_chunks = -(-len(mask) // chunk_tokens)
    start = (shard * n_chunks // n_shards) * chunk_tokens
    stop = ((shard + 1) * n_chunks // n_shards) * chunk_tokens
    part = np.zeros_like(mask, dtype=bool)
    part[start:stop] = mask[start:stop]
    return part


def layer_moments(
    array: zarr.Array, layer: int, mask: np.ndarray | None, block_tokens: int | None = None
) -> tuple[UnitSum, Scatter]:
    """One streamed pass over a layer: the uncentered unit-vector sum and the centered scatter."""
    d = array.shape[2]
    units, scatter = UnitSum.empty(d), Scatter.empty(d)
    for block in prefetched(iter_layer(array, layer, mask, block_tokens)):
        units.add(block.values)
        scatter.add(block.values)
    return units, scatter


def layer_centered_units(
    array: zarr.Array, layer: int, mask: np.ndarray | None, center: np.ndarray, block_tokens: int | None = None
) -> UnitSum:
    """Second streamed pass: the unit-vector sum of x - center (center = the layer's mean)."""
    units = UnitSum.empty(array.shape[2])
    for block in prefetched(iter_layer(array, layer, mask, block_tokens)):
        units.add(block.values, center)
    return units


def save_accumulators(path: str | os.PathLike, accumulators: dict[str, UnitSum | Scatter]) -> None:
    """Write named accumulators to one .npz file atomically."""
    arrays = {}
    for name, acc in accumulators.items():
        arrays[f"{name}/kind"] = np.array(type(acc).__name__)
        for field in fields(acc):
            arrays[f"{name}/{field.name}"] = np.asarray(getattr(acc, field.name))
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_accumulators(path: str | os.PathLike) -> dict[str, UnitSum | Scatter]:
    """Read accumulators written by save_accumulators."""
    kinds = {cls.__name__: cls for cls in (UnitSum, Scatter)}
    with np.load(path) as data:
        names = sorted({key.rsplit("/", 1)[0] for key in data.files})
        out = {}
        for name in names:
            cls = kinds[str(data[f"{name}/kind"])]
            values = {f.name: data[f"{name}/{f.name}"] for f in fields(cls)}
            values["count"] = int(values["count"])
            out[name] = cls(**values)
    return out
