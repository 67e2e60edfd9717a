"""Streaming float64 accumulators of one layer for the position/context split, mergeable across shards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from layergeom.analyses.posctx.design import Design, grid_design
from layergeom.stats.device import is_tensor, like, to_numpy, zeros
from layergeom.stats.scatter import Scatter
from layergeom.stream.driver import Feed
from layergeom.stream.feeds import scatter_feed

SUMS = "posctx/sums"


def group_sum(values, index: np.ndarray, n_groups: int):
    """Row sums of ``values`` (numpy or torch) grouped by the host ``index`` (0..n_groups-1), shape (n_groups, d)."""
    if is_tensor(values):
        return zeros((n_groups, values.shape[1]), values).index_add_(0, like(index, values), values)
    n = index.size
    onehot = sp.csr_matrix((np.ones(n), (index, np.arange(n))), shape=(n_groups, n))
    return np.asarray(onehot @ values)


class PosCtxSums:
    """Per-position and per-context sums and counts of one layer over the grid's tokens."""

    def __init__(self, n_ctx: int, n_pos: int, d: int, design: Design | None = None) -> None:
        self.design = design
        self.pos_sum = np.zeros((n_pos, d))
        self.ctx_sum = np.zeros((n_ctx, d))
        self.pos_count = np.zeros(n_pos, dtype=np.int64)
        self.ctx_count = np.zeros(n_ctx, dtype=np.int64)

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        """Add a block of grid tokens by their context and position indices."""
        if values.shape[0] == 0:
            return
        if self.design is None:
            raise ValueError("these sums were loaded from a partial; they take merges, not blocks")
        ctx_index, pos_index = self.design.ctx_index[rows], self.design.pos_index[rows]
        if is_tensor(values) and not is_tensor(self.pos_sum):
            self.pos_sum, self.ctx_sum = like(self.pos_sum, values), like(self.ctx_sum, values)
        self.pos_sum += group_sum(values, pos_index, self.pos_sum.shape[0])
        self.ctx_sum += group_sum(values, ctx_index, self.ctx_sum.shape[0])
        self.pos_count += np.bincount(pos_index, minlength=self.pos_count.size)
        self.ctx_count += np.bincount(ctx_index, minlength=self.ctx_count.size)

    def merge(self, other: PosCtxSums) -> None:
        """Fold another shard's sums of the same grid in."""
        self.pos_sum += like(other.pos_sum, self.pos_sum)
        self.ctx_sum += like(other.ctx_sum, self.ctx_sum)
        self.pos_count += other.pos_count
        self.ctx_count += other.ctx_count

    def state(self) -> dict[str, np.ndarray]:
        """The four sums."""
        return {
            "pos_sum": to_numpy(self.pos_sum),
            "ctx_sum": to_numpy(self.ctx_sum),
            "pos_count": self.pos_count,
            "ctx_count": self.ctx_count,
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> PosCtxSums:
        """Rebuild from :meth:`state`."""
        (n_pos, d), n_ctx = state["pos_sum"].shape, state["ctx_sum"].shape[0]
        acc = cls(n_ctx, n_pos, d)
        acc.pos_sum, acc.ctx_sum = np.array(state["pos_sum"]), np.array(state["ctx_sum"])
        acc.pos_count, acc.ctx_count = np.array(state["pos_count"]), np.array(state["ctx_count"])
        return acc

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean hidden state of every position and of every context: pos_sum / C and ctx_sum / T'."""
        return self.pos_sum / self.ctx_count.size, self.ctx_sum / self.pos_count.size


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


def decompose(sums: PosCtxSums, scatter: Scatter) -> Decomposition:
    """Mean effects of a complete balanced grid from its accumulated sums and the scatter of the same tokens."""
    n_ctx, n_pos = sums.ctx_count.size, sums.pos_count.size
    if scatter.count != n_ctx * n_pos or np.any(sums.pos_count != n_ctx) or np.any(sums.ctx_count != n_pos):
        raise ValueError(
            f"posctx: incomplete grid: {scatter.count} tokens seen for {n_ctx} contexts x {n_pos} positions"
        )
    pos_means, ctx_means = sums.finalize()
    return Decomposition(
        mu=scatter.mean.copy(), pos=pos_means - scatter.mean, ctx=ctx_means - scatter.mean, scatter=scatter.scatter
    )


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """The grid's per-position and per-context sums, and the scatter of the grid's tokens (shared by name)."""
    design = grid_design(tokens, **selection)
    n_ctx, n_pos = design.shape
    return [
        Feed(SUMS, design.mask, lambda layer, d: PosCtxSums(n_ctx, n_pos, d, design)),
        scatter_feed(design.mask),
    ]
