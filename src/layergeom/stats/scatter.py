"""Accumulators of one layer's vectors shared by several analyses: the d x d scatter, the cross products of a layer
with later layers and the unit-vector sum; linear CKA from them.

All are float64, exact up to rounding and mergeable (Chan's rule for the scatter), so token shards can
be processed anywhere in any order and merged afterwards.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from layergeom.stats.device import is_tensor, like, namespace, row_sq_norms, to_numpy

if TYPE_CHECKING:
    from layergeom.stats.device import Values


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
        """Rebuild from :meth:`state` (its arrays give the shapes: a d x d scatter, or a CrossProduct's (k, d, d))."""
        acc = cls.__new__(cls)
        acc.count, acc.mean, acc.scatter = int(state["count"]), np.array(state["mean"]), np.array(state["scatter"])
        return acc

    def finalize(self) -> np.ndarray:
        """Eigenvalues of the 1/N covariance, largest first, tiny negative rounding clipped to 0."""
        if self.count == 0:
            raise ValueError("no vectors were accumulated")
        values = np.linalg.eigvalsh(to_numpy(self.scatter) / self.count)[::-1]
        return np.clip(values, 0.0, None)


class CrossProduct(Scatter):
    """Rows of a layer x fed with the same rows of ``others`` later layers y_1 .. y_k, as a tuple (x, y_1, .., y_k):
    the count, the means of x and of every y_j (one vector of (1 + k) d) and the centered cross products
    S_xy_j = sum (x - mean_x)(y_j - mean_y_j)^T ((k, d, d)), merged by Chan's rule. With the scatters of x and of
    each y_j they give every block of the joint scatter."""

    def __init__(self, d: int, others: int = 1) -> None:
        super().__init__(d * (1 + others))
        self.scatter = np.zeros((others, d, d))

    def update(self, values: tuple[Values, ...] | Values, rows: np.ndarray) -> None:
        """Add a block: a tuple (x, y_1, .., y_k), or the same layers side by side in one array of (1 + k) d columns."""
        if not isinstance(values, tuple):
            d = self.scatter.shape[1]
            values = tuple(values[:, lo : lo + d] for lo in range(0, len(self.mean), d))
        if len(values[0]):
            self.merge(self.of(values))

    @classmethod
    def of(cls, values: tuple[Values, ...]) -> CrossProduct:
        """The cross products of one block, centered on its own means: (x - mean_x)^T y_j, as the centered rows of x
        sum to 0."""
        x, *others = values
        block = cls(x.shape[1], len(others))
        means = [v.mean(0) for v in values]
        block.count, block.mean = len(x), namespace(x).concatenate(means)
        centered = x - means[0]
        block.scatter = namespace(x).stack([centered.T @ y for y in others])
        return block

    def outer(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a_x b_y_j^T for every j, of two shifts of the means."""
        k, d = self.scatter.shape[:2]
        return a[None, :d, None] * b[d:].reshape(k, 1, d)

    def finalize(self) -> np.ndarray:
        """S_xy_j for every j, (k, d, d) (sums over the rows, not divided by the count)."""
        if self.count == 0:
            raise ValueError("no rows were accumulated")
        return to_numpy(self.scatter)


def cka_of(sxy: np.ndarray, norm_xx: float, norm_yy: float) -> float:
    """Linear CKA of two layers from their centered cross products S_xy and the Frobenius norms of their scatters:
    ||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F) (NaN when a layer is constant)."""
    norms = norm_xx * norm_yy
    return float(np.linalg.norm(sxy) ** 2 / norms) if norms > 0 else math.nan
