"""Feeds that several analyses share: the d x d scatter of a token selection, named by the tokens it selects, and
its reader for the merges."""

from __future__ import annotations

import numpy as np

from layergeom.stats.protocol import load_merged
from layergeom.stats.scatter import Scatter
from layergeom.stream.driver import Feed
from layergeom.stream.selection import mask_digest


def scatter_name(mask: np.ndarray) -> str:
    """Feed name of the shared scatter over the tokens of ``mask``: analyses selecting the same tokens share it."""
    return f"scatter/{mask_digest(mask)}"


def scatter_feed(mask: np.ndarray) -> Feed:
    """The scatter over the tokens of ``mask``, shared by name, its blocks computed once per cell of tokens that
    the same scatters select (anisotropy's and posctx's overlap in all but the first position)."""
    return Feed(scatter_name(mask), mask, lambda layer, d: Scatter(d), Scatter.of)


def load_scatter(parts, layer: int, mask: np.ndarray) -> Scatter:
    """The shared scatter of ``mask``'s tokens at stored layer ``layer``, merged over the shards' partials."""
    return load_merged(parts, layer, scatter_name(mask), Scatter)
