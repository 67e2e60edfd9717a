"""Intrinsic dimension of a point cloud: TwoNN (Facco et al. 2017), [SL]'s TwoNN variant and Levina-Bickel MLE
(docs/methods.md, Intrinsic dimension).

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
SL_EPS = 1e-8  # [SL]: r1 below it (mean norm 1) or mu = r2 / r1 at most 1 + it drops a point's ratio
SL_REDUCTION = 5  # [SL]'s reduction_factor: the line is fitted on the smallest fifth of the kept ratios


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


def sl_ratios(x: np.ndarray, block: int = 1024, nearest: np.ndarray | None = None) -> np.ndarray:
    """[SL]'s ratios mu = r2 / r1 of every row, neighbours among all rows (copies too), -1 where r1 < SL_EPS.

    Distances are those of the centred cloud scaled to mean norm 1, the scale of [SL]'s threshold; ``nearest``:
    every row's two nearest distances (``nearest_distances(x, 2)``) when already known.
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    scale = np.sqrt(np.einsum("ij,ij->i", centred, centred)).mean()
    r1, r2 = ((nearest_distances(x, 2, block) if nearest is None else nearest) / scale).T
    return np.where(r1 < SL_EPS, -1.0, r2 / np.maximum(r1, SL_EPS))


def sl_kept(mu: np.ndarray) -> np.ndarray:
    """Which of [SL]'s ratios enter the fit: mu > 1 + SL_EPS (not r1 ~ 0, not two equally near neighbours)."""
    return mu > 1 + SL_EPS


def sl_from_ratios(mu: np.ndarray) -> np.ndarray:
    """[SL]'s estimate from ratios along the last axis (``intrinsic_dimension`` of llm-microscope 0.0.7).

    Sorted, mu_(j) at most 1 + SL_EPS are dropped but keep their place in F_j = j / N; the slope through the
    origin of -log(1 - F_j) on log mu_(j) is fitted on the next min(K // 5, K - 1) ratios, K of them kept.
    """
    n = mu.shape[-1]
    kept = sl_kept(mu).sum(axis=-1, keepdims=True)
    dropped = n - kept
    mu = np.sort(mu, axis=-1)[..., :-1]  # the largest ratio (F = 1) is never fitted
    j = np.arange(n - 1)
    fit = (j >= dropped) & (j < dropped + np.minimum(kept // SL_REDUCTION, kept - 1))
    log_mu = np.log(np.where(fit, mu, 1.0))
    y = -np.log1p(-np.arange(1, n) / n)
    numerator, denominator = log_mu @ y, np.einsum("...i,...i->...", log_mu, log_mu)
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


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
    sl: float
    sl_lo: float
    sl_hi: float
    sl_dropped: int
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
    """TwoNN (both forms) and Levina-Bickel on the distinct rows of ``x``, [SL]'s estimate on all its rows;
    bootstrap intervals of TwoNN and [SL] over their ratios (TwoNN's resamples drawn first).

    Duplicate rule: rows that are exactly equal are one point; the first copy in row order is kept and
    the others removed before any neighbour search (``distinct_rows``, as DADApy's ``remove_identical_points``
    and as scikit-dimension run on ``np.unique(x, axis=0)``). ``n_duplicates`` counts the removed copies,
    ``n_points`` is the size of ``x`` and ``n_used`` the number of ratios mu = r2 / r1 behind TwoNN. Should two
    distinct rows still end up at distance zero (they collapse when the cloud's mean is subtracted), their
    ratios are left out of ``n_used``. (scikit-dimension's TwoNN given the raw rows, as of 0.5.0, drops
    every point at distance zero, all copies, while the copies stay neighbours of the other points; that
    rule is not followed here.) [SL]'s estimate keeps every row, copies too, and ``sl_dropped`` counts its
    ratios left out of the fit but kept in the empirical distribution (``sl_ratios``, ``sl_from_ratios``).
    """
    x = np.asarray(x, dtype=np.float64)
    if k_neighbors < 2:
        raise ValueError(f"k_neighbors must be at least 2, got {k_neighbors}")
    keep = distinct_rows(x)
    distances = nearest_distances(x[keep], min(k_neighbors, len(keep) - 1), block)
    kept = distances[distances[:, 0] > 0]
    mu = kept[:, 1] / kept[:, 0]
    slope, mle = twonn_from_ratios(mu, discard_fraction)
    # without copies the search above ran on every row: its first two columns are [SL]'s neighbours
    sl_mu = sl_ratios(x, block, distances[:, :2] if len(keep) == len(x) else None)
    rng = np.random.default_rng(seed)
    boot_slope, boot_mle = twonn_from_ratios(resample(mu, n_bootstrap, rng), discard_fraction)
    boot_sl = sl_from_ratios(resample(sl_mu, n_bootstrap, rng))
    slope_lo, slope_hi = percentile_interval(boot_slope, confidence)
    mle_lo, mle_hi = percentile_interval(boot_mle, confidence)
    sl_lo, sl_hi = percentile_interval(boot_sl, confidence)
    return IntrinsicDimension(
        twonn=float(slope),
        twonn_lo=slope_lo,
        twonn_hi=slope_hi,
        twonn_mle=float(mle),
        twonn_mle_lo=mle_lo,
        twonn_mle_hi=mle_hi,
        levina_bickel=levina_bickel(kept),
        sl=float(sl_from_ratios(sl_mu)),
        sl_lo=sl_lo,
        sl_hi=sl_hi,
        sl_dropped=len(x) - int(sl_kept(sl_mu).sum()),
        n_points=len(x),
        n_used=len(mu),
        n_duplicates=len(x) - len(keep),
    )


def resample(values: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """``n_bootstrap`` resamples of ``values`` with replacement, one per row."""
    return values[rng.integers(0, len(values), size=(n_bootstrap, len(values)))]


def percentile_interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central percentile interval of bootstrap estimates at level ``confidence``."""
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


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
