"""What linearity streams: the joint scatter of every layer and the next stored layer over the selected tokens."""

from __future__ import annotations

import polars as pl

from layergeom.stats.scatter import CrossScatter
from layergeom.stream.driver import Feed
from layergeom.stream.selection import token_mask

NAME = "linearity/joint"


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """One pair feed: (h_l, h_next) of the selected tokens, into a 2d x 2d joint scatter saved under layer l."""
    return [Feed(NAME, token_mask(tokens, **selection), lambda layer, width: CrossScatter(width), pair=True)]
