"""What the dimensions analysis streams: unit-vector sums with per-dimension squares and the shared scatter
(pass 1), standardized unit sums (pass 2, stored pairs), and in fused mode a sample for the standardized cosine."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.stats.device import is_tensor, like, to_numpy
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import UnitSum, unit_weights
from layergeom.stream.driver import Feed
from layergeom.stream.feeds import scatter_feed
from layergeom.stream.selection import token_mask

UNITS = "dimensions/units"
STANDARDIZED = "dimensions/standardized"
SAMPLE = "dimensions/sample"


class UnitSquares:
    """Count N, sum S of the unit vectors u = x / ||x|| (zero vectors skipped, as in UnitSum) and each dimension's
    sum Q of u_i^2: the contributions of the dimensions to the mean pairwise cosine."""

    def __init__(self, d: int) -> None:
        self.count = 0
        self.total = np.zeros(d)
        self.squares = np.zeros(d)

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        """Add a block's rows as unit vectors."""
        weights, nonzero = unit_weights(values)
        if is_tensor(values) and not is_tensor(self.total):
            self.total, self.squares = like(self.total, values), like(self.squares, values)
        self.total += weights @ values
        self.squares += (weights * weights) @ (values * values)
        self.count += int(nonzero.sum())

    def merge(self, other: UnitSquares) -> None:
        """Add another shard's sums."""
        self.count += other.count
        self.total += like(other.total, self.total)
        self.squares += like(other.squares, self.squares)

    def state(self) -> dict[str, np.ndarray]:
        """count, total and squares."""
        return {"count": np.int64(self.count), "total": to_numpy(self.total), "squares": to_numpy(self.squares)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> UnitSquares:
        """Rebuild from :meth:`state`."""
        acc = cls(len(state["total"]))
        acc.count = int(state["count"])
        acc.total, acc.squares = np.array(state["total"], np.float64), np.array(state["squares"], np.float64)
        return acc

    def finalize(self) -> np.ndarray:
        """CC_i = (S_i^2 - Q_i) / (N (N - 1)), the mean of u_i v_i over ordered pairs of distinct vectors; they sum
        to UnitSum's mean cosine. NaN with fewer than two vectors."""
        n = self.count
        total, squares = to_numpy(self.total), to_numpy(self.squares)
        if n < 2:
            return np.full(len(total), np.nan)
        return (total * total - squares) / (n * (n - 1))


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """Pass 1: the unit-vector sums and squares, and the scatter of the selected tokens (shared by name)."""
    mask = token_mask(tokens, **selection)
    return [Feed(UNITS, mask, lambda layer, d: UnitSquares(d)), scatter_feed(mask)]


def standardized_feeds(tokens: pl.DataFrame, selection: dict, standardize: np.ndarray) -> list[Feed]:
    """Pass 2: unit-vector sums of the selected tokens standardized by their layer's (mean, scale) of
    ``standardize`` (layers, 2, d)."""
    mask = token_mask(tokens, **selection)
    return [Feed(STANDARDIZED, mask, lambda layer, d: UnitSum(d, *standardize[layer]))]


def sample_rows(mask: np.ndarray, n_points: int, seed: int) -> np.ndarray:
    """``n_points`` of the selected rows drawn uniformly with ``seed``, in row order (every row when fewer)."""
    rows = np.flatnonzero(mask)
    if len(rows) <= n_points:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, n_points, replace=False))


def fused_feeds(tokens: pl.DataFrame, selection: dict, settings: dict) -> list[Feed]:
    """Fused extraction: the sample (``dimensions.sample`` ``settings``) the standardized cosine is taken on, kept as
    float32, which holds the forward pass's float32 hidden states exactly."""
    keep = np.zeros(tokens.height, dtype=bool)
    keep[sample_rows(token_mask(tokens, **selection), settings["n_points"], settings["seed"])] = True
    return [Feed(SAMPLE, keep, lambda layer, d: PointSample(d, np.float32))]
