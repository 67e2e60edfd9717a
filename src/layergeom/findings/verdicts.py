"""What a finding is, its three verdicts, and the small statistics the claim rules share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

HOLDS, FAILS, NOT_APPLICABLE = "holds", "does not hold", "not applicable"
MIDDLE = (1 / 3, 2 / 3)
TREND = 0.5


@dataclass(frozen=True)
class Claim:
    """A published claim, its reference value, the rule that turns measured values into a verdict, and the
    paper's own statement that the rule tests (``quote``: its words and where they stand)."""

    key: str
    paper: str
    text: str
    reference: str
    rule: str
    quote: str


@dataclass(frozen=True)
class Measure:
    """What a rule measured: the text, whether the claim holds (None: not applicable), and as numbers the value
    judged, its threshold, the margin (how far the value lies on the holding side; negative when it fails) and
    the layer it comes from."""

    text: str
    ok: bool | None
    value: float | None = None
    threshold: float | None = None
    margin: float | None = None
    layer: int | None = None


def at_least(text: str, value: float, threshold: float, layer: int | None = None) -> Measure:
    """Holds if ``value >= threshold`` (not applicable when the value is not finite)."""
    if not np.isfinite(value):
        return Measure(text, None, None, threshold, None, layer)
    return Measure(text, bool(value >= threshold), float(value), threshold, float(value - threshold), layer)


def at_most(text: str, value: float, threshold: float, layer: int | None = None) -> Measure:
    """Holds if ``value <= threshold`` (not applicable when the value is not finite)."""
    if not np.isfinite(value):
        return Measure(text, None, None, threshold, None, layer)
    return Measure(text, bool(value <= threshold), float(value), threshold, float(threshold - value), layer)


def within(text: str, value: float, bounds: tuple[float, float], layer: int | None = None) -> Measure:
    """Holds if ``value`` lies in ``bounds``; the threshold is the nearer bound."""
    low, high = bounds
    nearer = low if abs(value - low) <= abs(high - value) else high
    return Measure(text, bool(low <= value <= high), float(value), nearer, float(min(value - low, high - value)), layer)


def not_applicable(text: str) -> Measure:
    """Nothing to judge."""
    return Measure(text, None)


@dataclass(frozen=True)
class Finding:
    """One (claim, model, corpus) row: the measured value(s), the tokens used and the verdict."""

    claim: Claim
    model: str
    corpus: str
    selection: str
    measured: str
    verdict: str
    value: float | None = None
    threshold: float | None = None
    margin: float | None = None
    layer: int | None = None


def finding(claim: Claim, model: str, corpus: str, selection: str, measure: Measure) -> Finding:
    """The row of one claim on one (model, corpus) from what its rule measured."""
    return Finding(
        claim,
        model,
        corpus,
        selection,
        measure.text,
        verdict(measure.ok),
        measure.value,
        measure.threshold,
        measure.margin,
        measure.layer,
    )


def verdict(ok: bool | None) -> str:
    """``holds`` / ``does not hold``, or ``not applicable`` when there is nothing to judge (None)."""
    return NOT_APPLICABLE if ok is None else HOLDS if ok else FAILS


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN with fewer than 3 finite points or a constant series."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return np.nan
    from scipy.stats import spearmanr  # scipy.stats takes ~1 s to import: only the findings job needs it

    return float(spearmanr(x[keep], y[keep]).statistic)


def middle(table: pl.DataFrame) -> pl.DataFrame:
    """The rows of the middle layers: relative depth in [1/3, 2/3]."""
    return table.filter(pl.col("relative_depth").is_between(*MIDDLE))
