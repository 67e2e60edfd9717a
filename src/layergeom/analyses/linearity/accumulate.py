"""What linearity streams: the cross products of every layer with the next stored layer over the selected tokens,
and the scatter of each layer over them (shared by name with the analyses that select the same tokens)."""

from __future__ import annotations

import polars as pl

from layergeom.stats.scatter import CrossProduct
from layergeom.stream.driver import Feed
from layergeom.stream.feeds import scatter_feed
from layergeom.stream.selection import token_mask

NAME = "linearity/cross"


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """A pair feed of (h_l, h_next) into S_xy, saved under layer l, and the shared scatter of every layer."""
    mask = token_mask(tokens, **selection)
    return [Feed(NAME, mask, lambda layer, d, later: CrossProduct(d, later), pairs="next"), scatter_feed(mask)]
