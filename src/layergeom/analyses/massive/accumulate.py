"""What the massive-activations analysis streams: the top entries and the |x| histogram of the selected tokens."""

from __future__ import annotations

import polars as pl

from layergeom.analyses.massive.histogram import AbsHistogram
from layergeom.analyses.massive.top import TopEntries
from layergeom.stream.driver import Feed
from layergeom.stream.selection import token_mask

TOP = "massive/top"
HISTOGRAM = "massive/histogram"


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """Both accumulators over the selected tokens."""
    mask = token_mask(tokens, **selection)
    return [Feed(TOP, mask, lambda layer, d: TopEntries()), Feed(HISTOGRAM, mask, lambda layer, d: AbsHistogram())]
