"""Streaming float64 accumulators of one layer for the position/context split, mergeable across shards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from layergeom.spectrum import Scatter


def group_sum(values: np.ndarray, index: np.ndarray, n_groups: int) -> np.ndarray:
    """Row sums of ``values`` grouped by ``index`` (0..n_groups-1), shape (n_groups, d)."""
    n = index.size
    onehot = sp.csr_matrix((np.ones(n), (index, np.arange(n))), shape=(n_groups, n))
    return np.asarray(onehot @ values)


@dataclass
class LayerSums:
    """Count, mean and centered scatter (Chan's parallel update), plus per-position and per-context sums."""

    n: int
    mean: np.ndarray  # (d,)
    scatter: np.ndarray  # (d, d) sum of (x - mean)(x - mean)^T
    pos_sum: np.ndarray  # (T', d)
    ctx_sum: np.ndarray  # (C, d)
    pos_count: np.ndarray  # (T',)
    ctx_count: np.ndarray  # (C,)

    @classmethod
    def empty(cls, n_ctx: int, n_pos: int, d: int) -> LayerSums:
        """Accumulator with nothing seen yet."""
        return cls(
            n=0,
            mean=np.zeros(d),
            scatter=np.zeros((d, d)),
            pos_sum=np.zeros((n_pos, d)),
            ctx_sum=np.zeros((n_ctx, d)),
            pos_count=np.zeros(n_pos, dtype=np.int64),
            ctx_count=np.zeros(n_ctx, dtype=np.int64),
        )

    def update(self, values: np.ndarray, ctx_index: np.ndarray, pos_index: np.ndarray) -> None:
        """Add a block of tokens (rows of ``values``) with their grid context and position indices."""
        if values.shape[0] == 0:
            return
        values = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("posctx: hidden states contain inf or nan (fp16 overflow at extraction?)")
        moments = self._moments()
        moments.add(values)
        self._set_moments(moments)
        self.pos_sum += group_sum(values, pos_index, self.pos_sum.shape[0])
        self.ctx_sum += group_sum(values, ctx_index, self.ctx_sum.shape[0])
        self.pos_count += np.bincount(pos_index, minlength=self.pos_count.size)
        self.ctx_count += np.bincount(ctx_index, minlength=self.ctx_count.size)

    def merge(self, other: LayerSums) -> None:
        """Fold another accumulator of the same grid (another shard) into this one."""
        self._set_moments(self._moments().merge(other._moments()))
        self.pos_sum += other.pos_sum
        self.ctx_sum += other.ctx_sum
        self.pos_count += other.pos_count
        self.ctx_count += other.ctx_count

    def _moments(self) -> Scatter:
        return Scatter(self.n, self.mean, self.scatter)

    def _set_moments(self, moments: Scatter) -> None:
        self.n, self.mean, self.scatter = moments.count, moments.mean, moments.scatter


@dataclass(frozen=True)
class Decomposition:
    """One layer split as h[c, t] = mu + pos[t] + ctx[c] + resid[c, t], with the centered scatter."""

    mu: np.ndarray  # (d,)
    pos: np.ndarray  # (T', d)
    ctx: np.ndarray  # (C, d)
    scatter: np.ndarray  # (d, d) sum over tokens of (h - mu)(h - mu)^T

    @property
    def ss_total(self) -> float:
        """sum ||h - mu||^2 over the grid."""
        return float(np.trace(self.scatter))


def decompose(sums: LayerSums) -> Decomposition:
    """Mean effects of a complete balanced grid from its accumulated sums."""
    n_ctx, n_pos = sums.ctx_count.size, sums.pos_count.size
    if sums.n != n_ctx * n_pos or np.any(sums.pos_count != n_ctx) or np.any(sums.ctx_count != n_pos):
        raise ValueError(
            f"posctx: incomplete grid: {sums.n} tokens seen for {n_ctx} contexts x {n_pos} positions"
        )
    pos = sums.pos_sum / n_ctx - sums.mean
    ctx = sums.ctx_sum / n_pos - sums.mean
    return Decomposition(mu=sums.mean.copy(), pos=pos, ctx=ctx, scatter=sums.scatter)
