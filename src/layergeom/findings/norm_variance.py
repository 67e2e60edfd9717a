"""[NV] claims: V against M of the token types in the middle layers, and the decomposition over depth."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.findings.verdicts import (
    TREND,
    Claim,
    Finding,
    Measure,
    at_least,
    finding,
    middle,
    not_applicable,
    spearman,
    within,
)

SLOPE = (-1.3, -0.7)
R2 = 0.7
NV_SLOPE = Claim(
    "nv_slope",
    "NV",
    "in a middle layer the types' (M, V) lie near a line of slope about -1",
    "slope about -1 in the middle layers of BERT, RoBERTa, GPT-2",
    f"holds if a middle layer (relative depth in [1/3, 2/3]) has slope in [{SLOPE[0]}, {SLOPE[1]}] "
    f"and R² >= {R2}; not applicable without a fitted middle layer",
    '"we found a strong trade-off relationship between the norm and the variance: as the mean embedding '
    'becomes closer to the origin, the variance increases" (abstract)',
)
NV_M_SHARE = Claim(
    "nv_m_share",
    "NV",
    "M_all / Q_all rises with depth",
    "M_all / Q_all tends to grow going deeper",
    f"holds if the Spearman correlation of whole_m_share (every token type, as [NV] decomposes the whole set) "
    f"with the layer is >= {TREND} (layers before any final norm); m_share over the types in the count range "
    "is reported beside it",
    '"as the layers of Transformer models deepen, the embeddings move farther from the origin" (abstract)',
)
NV_VW_OVER_V = Claim(
    "nv_vw_over_v",
    "NV",
    "V_W / V_all rises with depth",
    "V_B shrinks relative to V_W going deeper",
    f"holds if the Spearman correlation of whole_vw_over_v (every token type) with the layer is >= {TREND} "
    "(layers before any final norm); vw_over_v over the types in the count range is reported beside it",
    '"the between-cluster variance relatively decreases, and the within-cluster variance relatively increases"'
    " (abstract)",
)
CLAIMS = (NV_SLOPE, NV_M_SHARE, NV_VW_OVER_V)
VARIANT = "all"


def slope_finding(layers: pl.DataFrame) -> Measure:
    """The middle layer that passes (else the one of slope closest to -1), and whether one passes; the margin is
    the smaller of the slope's distance inside its interval and R²'s above its bound."""
    fitted = middle(layers).filter(pl.col("slope").is_finite() & pl.col("r2").is_finite())
    if fitted.height == 0:
        return not_applicable("no fitted middle layer")
    passing = fitted.filter(pl.col("slope").is_between(*SLOPE) & (pl.col("r2") >= R2))
    pick = passing.sort("r2", descending=True) if passing.height else fitted.sort((pl.col("slope") + 1).abs())
    row = pick.row(0, named=True)
    slope = within("", row["slope"], SLOPE, row["layer"])
    text = f"layer {row['layer']}: slope {row['slope']:.3f}, R² {row['r2']:.3f}"
    return Measure(
        text, passing.height > 0, slope.value, slope.threshold, min(slope.margin, row["r2"] - R2), row["layer"]
    )


def depth_trend(layers: pl.DataFrame, column: str, besides: dict[str, tuple[pl.DataFrame, str]]) -> Measure:
    """Spearman correlation of ``column`` with the layer and its first and last values; ``besides`` names the
    (table, column) pairs whose correlation the text reports beside it."""
    kept = layers.filter(~pl.col("after_final_norm")).sort("layer")
    rho = spearman(kept["layer"].to_numpy(), kept[column].to_numpy())
    if not np.isfinite(rho):
        return not_applicable("fewer than 3 layers with values")
    first, last = kept.row(0, named=True), kept.row(-1, named=True)
    others = []
    for label, (table, other) in besides.items():
        rows = table.filter(~pl.col("after_final_norm")).sort("layer")
        others.append(f"{label}: ρ = {spearman(rows['layer'].to_numpy(), rows[other].to_numpy()):.2f}")
    measured = (
        f"ρ = {rho:.2f}; layer {first['layer']} {first[column]:.3f}, layer {last['layer']} {last[column]:.3f} "
        f"({'; '.join(others)})"
    )
    return at_least(measured, rho, TREND)


def besides(layers: pl.DataFrame, filtered: pl.DataFrame, column: str) -> dict[str, tuple[pl.DataFrame, str]]:
    """What a trend claim reports beside its value: the count-range column, and the whole set of variant
    ``filtered`` (without position 0 and the listed types: where massive first tokens decide the trend)."""
    return {column: (layers, column), f"variant filtered, whole_{column}": (filtered, f"whole_{column}")}


def findings(tables: dict[tuple[str, str], pl.DataFrame], selection: str) -> list[Finding]:
    """Every [NV] claim on every (model, corpus) layer table of the norm-variance analysis."""
    tokens = f"{selection}; variant {VARIANT}"
    rows = []
    for (model, corpus), table in tables.items():
        layers = table.filter(pl.col("variant") == VARIANT)
        filtered = table.filter(pl.col("variant") == "filtered")
        for claim, measure in (
            (NV_SLOPE, slope_finding(layers)),
            (NV_M_SHARE, depth_trend(layers, "whole_m_share", besides(layers, filtered, "m_share"))),
            (NV_VW_OVER_V, depth_trend(layers, "whole_vw_over_v", besides(layers, filtered, "vw_over_v"))),
        ):
            rows.append(finding(claim, model, corpus, tokens, measure))
    return rows
