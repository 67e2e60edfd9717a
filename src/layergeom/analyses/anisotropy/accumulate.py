"""What anisotropy streams: unit-vector sums and the shared scatter (pass 1), centered unit sums (pass 2),
and the rows of the intrinsic-dimension sample."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.analyses.anisotropy.intrinsic_dimension import subsample_rows
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import UnitSum
from layergeom.stream.driver import Feed
from layergeom.stream.feeds import scatter_feed
from layergeom.stream.selection import token_mask

UNITS = "anisotropy/units"
CENTERED = "anisotropy/centered"
SAMPLE = "anisotropy/id_sample"


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """Pass 1: the uncentered unit-vector sum and the scatter of the selected tokens (shared by name)."""
    mask = token_mask(tokens, **selection)
    return [
        Feed(UNITS, mask, lambda layer, d: UnitSum(d)),
        scatter_feed(mask),
    ]


def centered_feeds(tokens: pl.DataFrame, selection: dict, means: np.ndarray) -> list[Feed]:
    """Pass 2: unit-vector sums of the selected tokens minus their layer's mean."""
    mask = token_mask(tokens, **selection)
    return [Feed(CENTERED, mask, lambda layer, d: UnitSum(d, means[layer]))]


def sample_feeds(n_tokens: int, rows: np.ndarray, dtype: np.dtype | type = np.float64) -> list[Feed]:
    """The vectors of the intrinsic-dimension sample's rows, kept as ``dtype``."""
    mask = np.zeros(n_tokens, dtype=bool)
    mask[rows] = True
    return [Feed(SAMPLE, mask, lambda layer, d: PointSample(d, dtype))]


def fused_feeds(tokens: pl.DataFrame, selection: dict, settings: dict) -> list[Feed]:
    """Fused extraction: the rows of the intrinsic-dimension sample (``anisotropy.id`` ``settings``), chosen from
    the token table exactly as the ID job chooses them from a store, so both modes use the same points. They are
    kept as float32, which holds the fused forward pass's float32 hidden states exactly."""
    mask = token_mask(tokens, **selection)
    rows = subsample_rows(tokens, mask, settings["n_points"], settings["sample"], settings["seed"])
    return sample_feeds(tokens.height, rows, np.float32)
