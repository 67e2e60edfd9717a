"""What a finding is, its three verdicts, and the small statistics the claim rules share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import spearmanr

HOLDS, FAILS, NOT_APPLICABLE = "holds", "does not hold", "not applicable"
MIDDLE = (1 / 3, 2 / 3)
TREND = 0.5


@dataclass(frozen=True)
class Claim:
    """A published claim, its reference value and the rule that turns measured values into a verdict."""

    key: str
    paper: str
    text: str
    reference: str
    rule: str


@dataclass(frozen=True)
class Finding:
    """One (claim, model, corpus) row: the measured value(s), the tokens used and the verdict."""

    claim: Claim
    model: str
    corpus: str
    selection: str
    measured: str
    verdict: str


def verdict(ok: bool | None) -> str:
    """``holds`` / ``does not hold``, or ``not applicable`` when there is nothing to judge (None)."""
    return NOT_APPLICABLE if ok is None else HOLDS if ok else FAILS


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN with fewer than 3 finite points or a constant series."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return np.nan
    return float(spearmanr(x[keep], y[keep]).statistic)


def middle(table: pl.DataFrame) -> pl.DataFrame:
    """The rows of the middle layers: relative depth in [1/3, 2/3]."""
    return table.filter(pl.col("relative_depth").is_between(*MIDDLE))


def rising(rho: float) -> bool | None:
    """Rank correlation at least ``TREND`` (None if undetermined)."""
    return None if not np.isfinite(rho) else rho >= TREND


def falling(rho: float) -> bool | None:
    """Rank correlation at most ``-TREND`` (None if undetermined)."""
    return None if not np.isfinite(rho) else rho <= -TREND
