"""Token types of the norm-variance analysis: token ids, or surfaces that merge word-boundary and
continuation variants ("##", "Ġ", "▁"), and the out-of-core PCA of the per-type means."""

from __future__ import annotations

import numpy as np

from layergeom.stats.moments import GroupedMoments, Moments

MARKERS = ("##", "Ġ", "▁")
TYPE_KEYS = ("token_id", "surface")


def surface(token: str) -> str:
    """The piece without a leading word-boundary or continuation marker."""
    for marker in MARKERS:
        if token.startswith(marker) and len(token) > len(marker):
            return token[len(marker) :]
    return token


def surface_ids(token_ids: np.ndarray, tokens: list[str]) -> np.ndarray:
    """For every token id, the smallest token id of the same surface (its type key)."""
    order = np.argsort(token_ids, kind="stable")
    first: dict[str, int] = {}
    keys = np.empty(len(token_ids), dtype=np.int64)
    for i in order:
        keys[i] = first.setdefault(surface(tokens[i]), int(token_ids[i]))
    return keys


def regroup(moments: Moments, keys: np.ndarray) -> Moments:
    """Merge the moments of groups sharing a key (Chan's rule); ``keys`` is aligned with ``moments.ids``."""
    if len(moments) == 0:
        return moments
    order = np.lexsort((moments.ids, keys))
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    acc = GroupedMoments(moments.d)
    for r in range(int(rank.max()) + 1):
        rows = order[rank == r]
        acc.merge(Moments(keys[rows], moments.n[rows], moments.mean[rows], moments.s[rows], moments.q[rows]))
    return acc.moments()


def mean_pca(means: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the type means on their top principal directions and the explained variance ratios.

    Unweighted over types, centered; from the eigenvectors of the smaller of the d x d scatter and the
    k x k Gram matrix; each direction's sign makes its largest loading positive."""
    k = min(components, *means.shape)
    coords, ratios = np.full((len(means), components), np.nan), np.full(components, np.nan)
    if len(means) < 2 or k == 0:
        return coords, ratios
    centered = means - means.mean(axis=0)
    wide = centered.shape[0] < centered.shape[1]
    values, vectors = np.linalg.eigh(centered @ centered.T if wide else centered.T @ centered)
    values, vectors = values[::-1][:k], vectors[:, ::-1][:, :k]
    directions = centered.T @ vectors if wide else vectors
    directions /= np.maximum(np.linalg.norm(directions, axis=0), np.finfo(float).tiny)
    directions *= np.sign(directions[np.abs(directions).argmax(axis=0), np.arange(k)])
    coords[:, :k] = centered @ directions
    total = float(np.einsum("ij,ij->", centered, centered))
    if total > 0:
        ratios[:k] = np.clip(values, 0.0, None) / total
    return coords, ratios
