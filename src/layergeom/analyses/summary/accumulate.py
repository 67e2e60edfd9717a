"""Per-layer norm summary: token count, mean norm and mean squared norm, streamed in float64."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.stats.device import is_tensor, row_sq_norms, to_numpy
from layergeom.stream.driver import Feed
from layergeom.stream.selection import token_mask

NAME = "summary/norms"


class NormSums:
    """Count, sum of norms and sum of squared norms of the vectors seen."""

    def __init__(self, n: int = 0, norm_sum: float = 0.0, sq_sum: float = 0.0) -> None:
        self.n, self.norm_sum, self.sq_sum = n, norm_sum, sq_sum

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        """Add the norms of a block's rows."""
        sq = row_sq_norms(values)
        self.n += int(sq.shape[0])
        self.norm_sum += sq.sqrt().sum() if is_tensor(sq) else float(np.sqrt(sq).sum())
        self.sq_sum += sq.sum() if is_tensor(sq) else float(sq.sum())

    def merge(self, other: NormSums) -> None:
        """Add another shard's sums."""
        self.n += other.n
        self.norm_sum += other.norm_sum
        self.sq_sum += other.sq_sum

    def state(self) -> dict[str, np.ndarray]:
        """The three sums as arrays."""
        return {
            "n": np.int64(self.n),
            "norm_sum": np.float64(to_numpy(self.norm_sum)),
            "sq_sum": np.float64(to_numpy(self.sq_sum)),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> NormSums:
        """Rebuild from :meth:`state`."""
        return cls(int(state["n"]), float(state["norm_sum"]), float(state["sq_sum"]))

    def finalize(self) -> dict[str, float]:
        """n_tokens, mean_norm and mean_sq_norm (NaN when no token was seen)."""
        n, state = self.n, self.state()
        return {
            "n_tokens": n,
            "mean_norm": float(state["norm_sum"]) / n if n else np.nan,
            "mean_sq_norm": float(state["sq_sum"]) / n if n else np.nan,
        }


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """The summary's one accumulator over the selected tokens."""
    return [Feed(NAME, token_mask(tokens, **selection), lambda layer, d: NormSums())]
