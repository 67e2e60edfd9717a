"""Per-type moments of the norm-variance analysis, keyed so that the first position can be split off later.

Keys are ``2 * token_id + (position == 0)``: the occurrences at the first position of a sequence can be
dropped after the merge without a second pass over the store.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.stats.moments import GroupedMoments
from layergeom.stream.driver import Feed
from layergeom.stream.selection import token_mask

NAME = "norm_variance/moments"


def type_keys(token_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Accumulator keys ``2 * token_id + (position == 0)`` of every stored token."""
    token_ids = np.asarray(token_ids, dtype=np.int64)
    if token_ids.size and token_ids.min() < 0:
        raise ValueError("token ids must be non-negative")
    return 2 * token_ids + (np.asarray(positions) == 0)


def feeds(tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """Per-type moments of every layer over the selected tokens."""
    mask = token_mask(tokens, **selection)
    keys = type_keys(tokens["token_id"].to_numpy(), tokens["position"].to_numpy())
    capacity = len(np.unique(keys[mask]))
    return [Feed(NAME, mask, lambda layer, d: GroupedMoments(d, keys, capacity))]
