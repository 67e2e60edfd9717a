"""The numbers of the dimensions analysis: rogue-dimension ranking and shares, the standardization of a layer, and
IsoScore from the covariance eigenvalues."""

from __future__ import annotations

import math

import numpy as np

from layergeom.stats.scatter import Scatter

TOP = 10  # dimensions kept per layer in the long table, and the largest share column
SHARES = (1, 3, TOP)


def ranked(contributions: np.ndarray, top: int = TOP) -> np.ndarray:
    """Indices of the ``top`` largest contributions, largest first (ties by index)."""
    return np.argsort(-contributions, kind="stable")[:top]


def top_shares(contributions: np.ndarray) -> dict[str, float]:
    """``top{k}_share``: the part of the mean cosine (the sum of the contributions) carried by the k largest
    contributions, k in SHARES; NaN when the mean cosine is not positive."""
    total = float(contributions.sum())
    order = ranked(contributions)
    return {f"top{k}_share": float(contributions[order[:k]].sum()) / total if total > 0 else math.nan for k in SHARES}


def standardization(scatter: Scatter) -> np.ndarray:
    """(2, d): the layer's mean and the scale 1 / standard deviation of each dimension (0 for a constant one, which
    then adds nothing)."""
    std = np.sqrt(np.clip(np.diag(scatter.scatter), 0.0, None) / scatter.count)
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
    return np.stack([scatter.mean, scale])


def isoscore(eigenvalues: np.ndarray) -> float:
    """IsoScore (Rudman et al. 2022) of covariance eigenvalues (any common scale): 1 isotropic, 0 one direction.

    As the ``IsoScore`` package: the eigenvalues scaled to norm sqrt(n), their distance to (1, ..., 1) normalised by
    sqrt(2 (n - sqrt n)) into the defect delta, and ((n - delta^2 (n - sqrt n))^2 - n) / (n (n - 1)), n = d."""
    n = len(eigenvalues)
    norm = float(np.linalg.norm(eigenvalues))
    if n < 2 or norm == 0:
        return math.nan
    scaled = eigenvalues * math.sqrt(n) / norm
    defect = float(np.linalg.norm(scaled - 1.0)) / math.sqrt(2 * (n - math.sqrt(n)))
    return ((n - defect**2 * (n - math.sqrt(n))) ** 2 - n) / (n * (n - 1))
