"""Accumulators of one layer's vectors shared by several analyses: the d x d scatter, the cross products of a layer
with the next and the unit-vector sum.

All are float64, exact up to rounding and mergeable (Chan's rule for the scatter), so token shards can
be processed anywhere in any order and merged afterwards.
"""

from __future__ import annotations

import math

import numpy as np

from layergeom.stats.device import is_tensor, like, row_sq_norms, to_numpy


def unit_weights(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 / ||row|| of every row and which rows are nonzero; a zero row gets weight 1 (it adds nothing)."""
    norms = row_sq_norms(x) ** 0.5
    nonzero = norms > 0
    return 1.0 / (norms + ~nonzero), nonzero


class UnitSum:
    """Count and sum of unit vectors of z = (x - center) * scale, z / ||z||; zero vectors have no direction and are
    skipped. ``scale`` multiplies each dimension (1 / its standard deviation: standardized vectors)."""

    def __init__(self, d: int, center: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        self.count = 0
        self.total = np.zeros(d)
        self.center = center
        self.scale = scale

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        """Add a block's rows (minus ``center``, times ``scale``, where set) as unit vectors."""
        x = values if self.center is None else values - like(self.center, values)
        x = x if self.scale is None else x * like(self.scale, x)
        weights, nonzero = unit_weights(x)
        if is_tensor(x) and not is_tensor(self.total):
            self.total = like(self.total, x)
        self.total += weights @ x
        self.count += int(nonzero.sum())

    def merge(self, other: UnitSum) -> None:
        """Add another shard's sum (same center and scale)."""
        if not (same_array(self.center, other.center) and same_array(self.scale, other.scale)):
            raise ValueError("cannot merge unit-vector sums taken about different centers or scales")
        self.count += other.count
        self.total += like(other.total, self.total)

    def state(self) -> dict[str, np.ndarray]:
        """count, total, the center and the scale (empty when not set)."""
        center = np.empty(0) if self.center is None else self.center
        scale = np.empty(0) if self.scale is None else self.scale
        return {
            "count": np.int64(self.count),
            "total": to_numpy(self.total),
            "center": to_numpy(center),
            "scale": to_numpy(scale),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> UnitSum:
        """Rebuild from :meth:`state` (a partial saved before ``scale`` existed has none)."""
        center, scale = state["center"], state.get("scale", np.empty(0))
        acc = cls(len(state["total"]), center if center.size else None, scale if scale.size else None)
        acc.count, acc.total = int(state["count"]), np.array(state["total"], dtype=np.float64)
        return acc

    def finalize(self) -> float:
        """Mean of u_i . u_j over ordered pairs i != j: (||sum u||^2 - N) / (N (N - 1))."""
        n = self.count
        if n < 2:
            return math.nan
        return float((self.total @ self.total - n) / (n * (n - 1)))


def same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two optional arrays are both unset or equal."""
    return (a is None) == (b is None) and (a is None or np.array_equal(to_numpy(a), to_numpy(b)))


class Scatter:
    """Count, mean and centered scatter matrix sum (x - mean)(x - mean)^T, merged by Chan's rule."""

    def __init__(self, d: int) -> None:
        self.count = 0
        self.mean = np.zeros(d)
        self.scatter = np.zeros((d, d))

    @classmethod
    def of(cls, values: np.ndarray) -> Scatter:
        """The scatter of one block (n >= 1 rows), centered on its own mean."""
        block = cls(values.shape[1])
        block.count, block.mean = len(values), values.mean(0)
        block.scatter = block.product(values - block.mean)
        return block

    @staticmethod
    def product(centered: np.ndarray) -> np.ndarray:
        """The sum of the centered rows' outer products."""
        return centered.T @ centered

    @staticmethod
    def outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The outer product a b^T of two mean shifts (Chan's correction term)."""
        return a[:, None] * b[None, :]

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        """Add a block."""
        if len(values):
            self.merge(type(self).of(values))

    def merge(self, other: Scatter) -> None:
        """Fold another scatter in (Chan's pairwise rule)."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.scatter = other.count, other.mean * 1.0, other.scatter * 1.0
            return
        n = self.count + other.count
        delta = like(other.mean, self.mean) - self.mean
        weight = self.count * other.count / n
        scatter = self.scatter + like(other.scatter, self.scatter)
        scatter += self.outer(delta * weight, delta)
        self.count, self.mean, self.scatter = n, self.mean + delta * (other.count / n), scatter

    def state(self) -> dict[str, np.ndarray]:
        """count, mean and scatter."""
        return {"count": np.int64(self.count), "mean": to_numpy(self.mean), "scatter": to_numpy(self.scatter)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Scatter:
        """Rebuild from :meth:`state`."""
        acc = cls(len(state["mean"]))
        acc.count, acc.mean, acc.scatter = int(state["count"]), np.array(state["mean"]), np.array(state["scatter"])
        return acc

    def finalize(self) -> np.ndarray:
        """Eigenvalues of the 1/N covariance, largest first, tiny negative rounding clipped to 0."""
        if self.count == 0:
            raise ValueError("no vectors were accumulated")
        values = np.linalg.eigvalsh(to_numpy(self.scatter) / self.count)[::-1]
        return np.clip(values, 0.0, None)


class CrossProduct(Scatter):
    """Vector pairs (x, y) fed side by side as rows of width 2d (a layer and the next): the count, the mean of the
    rows and the centered cross-product sum S_xy = sum (x - mean_x)(y - mean_y)^T (d x d), merged by Chan's rule.
    With the scatters of x and of y it gives every block of the pairs' joint scatter."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.scatter = np.zeros((width // 2, width // 2))

    @staticmethod
    def product(centered: np.ndarray) -> np.ndarray:
        """S_xy of centered rows (x, y)."""
        d = centered.shape[1] // 2
        return centered[:, :d].T @ centered[:, d : 2 * d]

    @staticmethod
    def outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a_x b_y^T of two shifts of the mean of (x, y)."""
        d = len(a) // 2
        return a[:d, None] * b[None, d : 2 * d]

    def finalize(self) -> np.ndarray:
        """S_xy (a sum over the pairs, not divided by the count)."""
        if self.count == 0:
            raise ValueError("no vector pairs were accumulated")
        return to_numpy(self.scatter)
