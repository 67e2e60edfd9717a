"""Intrinsic dimension of a point cloud: TwoNN (Facco et al. 2017) and Levina-Bickel MLE (docs/methods.md,
Intrinsic dimension).

Nearest neighbours are exact: a float32 matrix-product screen with a rigorous rounding-error
bound keeps every pair that can be among the k nearest, whose distances are then recomputed in
float64 from differences. Memory is bounded by the block size, not by the square of the points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

_U32 = 2.0**-24  # unit roundoff of float32
_PAIR_CHUNK = 1 << 22  # float64 values per chunk of exact pair differences


def nearest_distances(x: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Exact Euclidean distances (n, k) from every row of ``x`` to its k nearest other rows, ascending."""
    n, d = x.shape
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < number of points, got k={k} for {n} points")
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    sq = np.einsum("ij,ij->i", x, x)
    # float32 rounding: |screened - exact squared distance| <= (d + 16) u (|x_i| + |x_j|)^2, which is at most
    # 2 (d + 16) u (|x_i|^2 + |x_j|^2); twice that, s_i + s_j with s = 4 (d + 16) u |x|^2, is the slack used.
    slack = 4 * (d + 16) * _U32 * sq
    minus2_x32, x32 = (-2 * x).astype(np.float32), x.astype(np.float32)
    upper_col, lower_shift = (sq + slack).astype(np.float32), (2 * slack).astype(np.float32)
    out = np.empty((n, k))
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = np.arange(stop - start)
        # screen_ij = |x_j|^2 + s_j - 2 x_i.x_j: the upper bound of the squared distance less |x_i|^2 - s_i.
        screen = minus2_x32[start:stop] @ x32.T
        screen += upper_col
        screen[rows, rows + start] = np.inf
        # k points lie within the k-th smallest upper bound, so every true k-nearest has its lower bound
        # (screen_ij - 2 s_j - 2 s_i after adding the row term back) below it.
        limit = np.partition(screen, k - 1, axis=1)[:, k - 1] + 2 * slack[start:stop]
        screen -= lower_shift
        pair_rows, pair_cols = np.nonzero(screen <= limit.astype(np.float32)[:, None])
        del screen
        exact = _pair_sq_distances(x, pair_rows + start, pair_cols)
        order = np.lexsort((exact, pair_rows))
        first = np.searchsorted(pair_rows[order], rows)
        out[start:stop] = np.sqrt(exact[order][first[:, None] + np.arange(k)])
    return out


def _pair_sq_distances(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared distances ||x[rows] - x[cols]||^2 from differences, in bounded chunks."""
    out = np.empty(len(rows))
    step = max(1, _PAIR_CHUNK // x.shape[1])
    for s in range(0, len(rows), step):
        diff = x[rows[s : s + step]] - x[cols[s : s + step]]
        out[s : s + step] = np.einsum("ij,ij->i", diff, diff)
    return out


def distinct_rows(x: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence, in row order, of every distinct row of ``x``.

    Rows are duplicates when exactly equal (``np.unique(x, axis=0)``); no tolerance. Keeping one copy of
    each distinct point is the rule of DADApy's ``remove_identical_points``.
    """
    _, first = np.unique(x, axis=0, return_index=True)
    return np.sort(first)


def twonn_from_ratios(mu: np.ndarray, discard_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """TwoNN from ratios mu = r2 / r1 along the last axis: (slope through the origin, censored MLE).

    Keeps the k = int(N (1 - discard_fraction)) smallest ratios (0 < discard_fraction < 1); the slope fits
    -log(1 - i/N) against log mu_(i), i = 1..k; the MLE is (k - 1) / (sum log mu_(i) + (N - k) log mu_(k)),
    the conventions of scikit-dimension's TwoNN.
    """
    if not 0 < discard_fraction < 1:
        raise ValueError(f"discard_fraction must be in (0, 1): the largest ratio has F_emp = 1, got {discard_fraction}")
    n = mu.shape[-1]
    keep = int(n * (1 - discard_fraction))
    if keep < 2:
        raise ValueError(f"fewer than 2 ratios left after discarding {discard_fraction:.0%} of {n}")
    log_mu = np.log(np.sort(mu, axis=-1)[..., :keep])
    y = -np.log1p(-np.arange(1, keep + 1) / n)
    slope = (log_mu @ y) / np.einsum("...i,...i->...", log_mu, log_mu)
    mle = (keep - 1) / (log_mu.sum(axis=-1) + (n - keep) * log_mu[..., -1])
    return slope, mle


def levina_bickel(distances: np.ndarray) -> float:
    """Levina-Bickel MLE with k = distances.shape[1] neighbours, pooled as 1 / mean(1 / m_k(x)).

    The pooling is MacKay and Ghahramani's correction (scikit-dimension's MLE with comb='mle');
    m_k(x)^-1 = (1 / (k - 1)) sum_{j<k} log(T_k(x) / T_j(x)).
    """
    k = distances.shape[1]
    if k < 2:
        raise ValueError("Levina-Bickel needs at least 2 neighbours")
    inverse = np.log(distances[:, -1:] / distances[:, :-1]).sum(axis=1) / (k - 1)
    mean_inverse = float(inverse.mean())
    return 1.0 / mean_inverse if mean_inverse > 0 else math.nan


@dataclass(frozen=True)
class IntrinsicDimension:
    """Estimates for one point cloud; intervals are bootstrap percentiles over the ratios mu."""

    twonn: float
    twonn_lo: float
    twonn_hi: float
    twonn_mle: float
    twonn_mle_lo: float
    twonn_mle_hi: float
    levina_bickel: float
    n_points: int
    n_used: int
    n_duplicates: int


def estimate(
    x: np.ndarray,
    discard_fraction: float = 0.1,
    k_neighbors: int = 20,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    block: int = 1024,
) -> IntrinsicDimension:
    """TwoNN (both forms, with bootstrap intervals) and Levina-Bickel on the distinct rows of ``x``.

    Duplicate rule: rows that are exactly equal are one point; the first copy in row order is kept and
    the others removed before any neighbour search (``distinct_rows``, as DADApy's ``remove_identical_points``
    and as scikit-dimension run on ``np.unique(x, axis=0)``). ``n_duplicates`` counts the removed copies,
    ``n_points`` is the size of ``x`` and ``n_used`` the number of ratios mu = r2 / r1 behind TwoNN. Should two
    distinct rows still end up at distance zero (they collapse when the cloud's mean is subtracted), their
    ratios are left out of ``n_used``. (scikit-dimension's TwoNN given the raw rows, as of 0.5.0, drops
    every point at distance zero, all copies, while the copies stay neighbours of the other points; that
    rule is not followed here.)
    """
    x = np.asarray(x, dtype=np.float64)
    if k_neighbors < 2:
        raise ValueError(f"k_neighbors must be at least 2, got {k_neighbors}")
    keep = distinct_rows(x)
    distances = nearest_distances(x[keep], min(k_neighbors, len(keep) - 1), block)
    kept = distances[distances[:, 0] > 0]
    mu = kept[:, 1] / kept[:, 0]
    slope, mle = twonn_from_ratios(mu, discard_fraction)
    rng = np.random.default_rng(seed)
    boots = mu[rng.integers(0, len(mu), size=(n_bootstrap, len(mu)))]
    boot_slope, boot_mle = twonn_from_ratios(boots, discard_fraction)
    tails = [50 * (1 - confidence), 50 * (1 + confidence)]
    slope_lo, slope_hi = np.percentile(boot_slope, tails)
    mle_lo, mle_hi = np.percentile(boot_mle, tails)
    return IntrinsicDimension(
        twonn=float(slope),
        twonn_lo=float(slope_lo),
        twonn_hi=float(slope_hi),
        twonn_mle=float(mle),
        twonn_mle_lo=float(mle_lo),
        twonn_mle_hi=float(mle_hi),
        levina_bickel=levina_bickel(kept),
        n_points=len(x),
        n_used=len(mu),
        n_duplicates=len(x) - len(keep),
    )


def subsample_rows(tokens: pl.DataFrame, mask: np.ndarray, n_points: int, how: str, seed: int = 0) -> np.ndarray:
    """Sorted store rows of the subsample: the first ``n_points`` selected tokens in (seq_id, position)
    order (``how='first'``) or a seeded uniform sample without replacement (``how='random'``)."""
    candidates = np.flatnonzero(mask)
    if how == "first":
        seq = tokens["seq_id"].to_numpy()[candidates]
        pos = tokens["position"].to_numpy()[candidates]
        chosen = candidates[np.lexsort((pos, seq))[:n_points]]
    elif how == "random":
        rng = np.random.default_rng(seed)
        chosen = rng.choice(candidates, size=min(n_points, len(candidates)), replace=False)
    else:
        raise ValueError(f"unknown subsample '{how}' (expected 'first' or 'random')")
    return np.sort(chosen)
