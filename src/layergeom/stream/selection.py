"""Which stored tokens enter a statistic: one boolean mask over the token table."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl


def token_mask(
    tokens: pl.DataFrame,
    include_special: bool = False,
    exclude_first_position: bool = False,
    exclude_token_ids: Sequence[int] = (),
) -> np.ndarray:
    """Boolean mask over rows of the token table for the chosen token selection."""
    keep = np.ones(tokens.height, dtype=bool)
    if not include_special:
        keep &= ~tokens["is_special"].to_numpy()
    if exclude_first_position:
        keep &= tokens["position"].to_numpy() != 0
    if len(exclude_token_ids):
        keep &= ~np.isin(tokens["token_id"].to_numpy(), np.asarray(exclude_token_ids))
    return keep


def describe(include_special: bool, exclude_first_position: bool) -> str:
    """A short phrase for captions saying which tokens were used."""
    special = "special tokens included" if include_special else "special tokens excluded"
    first = "first position excluded" if exclude_first_position else "first position included"
    return f"{special}, {first}"


def mask_digest(mask: np.ndarray) -> str:
    """A short stable name of a token mask: equal masks (same tokens) get equal digests."""
    return hashlib.sha256(np.packbits(np.asarray(mask, dtype=bool)).tobytes() + str(len(mask)).encode()).hexdigest()[
        :12
    ]
