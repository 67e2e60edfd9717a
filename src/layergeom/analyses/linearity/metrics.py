"""Layer-to-layer numbers from the joint centered scatter of (h_l, h_next): the linearity score of LLM-Microscope,
its residual-removed variant and linear CKA."""

from __future__ import annotations

import numpy as np

from layergeom.stats.scatter import cka_of

EPS = np.finfo(np.float64).eps


def explained_share(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> float:
    """tr(S_yx S_xx^+ S_xy) / tr(S_yy): 1 - ||X A - Y||_F^2 / ||Y||_F^2 for the least-squares map A of the centered X
    onto Y. S_xx is scaled to unit diagonal first; its eigenvalues at or below d * eps times the largest count as 0."""
    total = float(np.trace(syy))
    if total <= 0.0:
        return np.nan
    diagonal = np.diag(sxx)
    scale = np.divide(1.0, np.sqrt(diagonal), out=np.zeros_like(diagonal), where=diagonal > 0)
    values, vectors = np.linalg.eigh(sxx * scale[:, None] * scale[None, :])
    keep = values > len(values) * EPS * values.max(initial=0.0)
    coords = vectors[:, keep].T @ (sxy * scale[:, None])
    return float(np.sum(coords**2 / values[keep, None]) / total)


def residual_blocks(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks of (x, r) with r = y - x: S_xx, S_xr = S_xy - S_xx and S_rr = S_yy - S_xy - S_yx + S_xx."""
    return sxx, sxy - sxx, syy - sxy - sxy.T + sxx


def linear_cka(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> float:
    """Linear CKA of centered X and Y: ||S_xy||_F^2 / (||S_xx||_F ||S_yy||_F)."""
    return cka_of(sxy, float(np.linalg.norm(sxx)), float(np.linalg.norm(syy)))


def pair_row(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> dict[str, float]:
    """linearity, linearity_residual and cka of one pair of layers."""
    return {
        "linearity": explained_share(sxx, sxy, syy),
        "linearity_residual": explained_share(*residual_blocks(sxx, sxy, syy)),
        "cka": linear_cka(sxx, sxy, syy),
    }
