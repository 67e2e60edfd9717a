"""The balanced context x position grid of a contexts-mode token table, for the position/context split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Design:
    """Which stored tokens form the C x T' grid, and each token's context and position index."""

    ctx_index: np.ndarray  # per token-table row: grid context index, -1 when the row is not used
    pos_index: np.ndarray  # per token-table row: grid position index, -1 when the row is not used
    context_ids: np.ndarray  # (C,) seq_id of each grid context
    positions: np.ndarray  # (T',) stored position of each grid position
    topics: list[str | None]  # (C,) topic of each grid context
    dropped_contexts: int  # contexts left out because a special token sits inside their text

    @property
    def mask(self) -> np.ndarray:
        """Boolean mask over token-table rows that enter the grid."""
        return self.ctx_index >= 0

    @property
    def shape(self) -> tuple[int, int]:
        """(C, T'): contexts and positions of the grid."""
        return len(self.context_ids), len(self.positions)


def grid_design(tokens: pl.DataFrame, include_special: bool, exclude_first_position: bool) -> Design:
    """Map token rows to a complete C x T' grid; special tokens out unless asked, position 0 optionally out.

    Special tokens found at the same position in every context (e.g. [CLS], [SEP]) remove that
    position; a context with a special token elsewhere is dropped whole, keeping the design balanced.
    """
    seq = tokens["seq_id"].to_numpy().astype(np.int64)
    pos = tokens["position"].to_numpy().astype(np.int64)
    special = tokens["is_special"].to_numpy().astype(bool)
    if seq.size == 0:
        raise ValueError("posctx: the token table is empty")
    context_ids, row_ctx, counts = np.unique(seq, return_inverse=True, return_counts=True)
    length = int(counts[0])
    if np.any(counts != length) or pos.min() < 0 or pos.max() >= length:
        raise ValueError(
            "posctx needs a contexts-mode corpus (every sequence exactly T tokens, positions 0..T-1); "
            f"found sequence lengths {sorted(set(counts.tolist()))[:5]}"
        )
    n_ctx = len(context_ids)
    grid = np.full((n_ctx, length), -1, dtype=np.int64)
    grid[row_ctx, pos] = np.arange(seq.size)
    if np.any(grid < 0):
        raise ValueError("posctx: a sequence repeats a position; positions must be 0..T-1 once each")
    special_grid = special[grid]
    keep_pos = np.ones(length, dtype=bool)
    keep_ctx = np.ones(n_ctx, dtype=bool)
    if exclude_first_position:
        keep_pos[0] = False
    if not include_special:
        keep_pos &= ~special_grid.all(axis=0)
        keep_ctx &= ~special_grid[:, keep_pos].any(axis=1)
    if keep_pos.sum() < 2 or keep_ctx.sum() < 2:
        raise ValueError(
            f"posctx: only {int(keep_ctx.sum())} contexts x {int(keep_pos.sum())} positions left after "
            "token selection; need at least 2 of each (set posctx.include_special or use longer contexts)"
        )
    ctx_index = np.full(seq.size, -1, dtype=np.int64)
    pos_index = np.full(seq.size, -1, dtype=np.int64)
    kept = grid[np.ix_(keep_ctx, keep_pos)]
    ctx_index[kept] = np.arange(kept.shape[0])[:, None]
    pos_index[kept] = np.arange(kept.shape[1])[None, :]
    first_row = grid[keep_ctx, 0]
    topics = tokens["topic"].to_list() if "topic" in tokens.columns else [None] * seq.size
    return Design(
        ctx_index=ctx_index,
        pos_index=pos_index,
        context_ids=context_ids[keep_ctx],
        positions=np.flatnonzero(keep_pos).astype(np.int64),
        topics=[topics[i] for i in first_row],
        dropped_contexts=int(n_ctx - keep_ctx.sum()),
    )
