"""[TL] claim: consecutive layers of a decoder are almost linear maps of each other (linearity score near 1)."""

from __future__ import annotations

import polars as pl

from layergeom.findings.verdicts import Claim, Finding, Measure, at_least, finding, not_applicable

LINEAR = 0.9
TL_LINEAR = Claim(
    "tl_linear",
    "TL",
    "decoders: each layer is almost a linear map of the one before",
    "Procrustes similarity (linearity score) of 0.99 between sequential layers of GPT, LLaMA, OPT, BLOOM",
    f"decoders only, pairs of consecutive stored layers whose next layer is before any final norm: holds if the "
    f"median linearity over the pairs is >= {LINEAR}",
    '"We analyze embedding transformations between sequential layers, uncovering a near-perfect linear relationship '
    '(Procrustes similarity score of 0.99)." (abstract)',
)
CLAIMS = (TL_LINEAR,)


def median_linearity(table: pl.DataFrame) -> Measure:
    """Median linearity score of a decoder's consecutive pairs before the final norm."""
    if table.height == 0 or table["kind"][0] != "decoder":
        return not_applicable("no decoder pair" if table.height == 0 else f"{table['kind'][0]} model")
    pairs = table.filter(~pl.col("next_after_final_norm") & pl.col("linearity").is_finite())
    if pairs.height == 0:
        return not_applicable("no pair of stored layers before the final norm")
    value = float(pairs["linearity"].median())
    low = pairs.sort("linearity").row(0, named=True)
    text = (
        f"median {value:.3f} over {pairs.height} pair(s), lowest {low['linearity']:.3f} "
        f"({low['layer']} -> {low['next_layer']})"
    )
    return at_least(text, value, LINEAR)


def findings(tables: dict[tuple[str, str], pl.DataFrame], selection: str) -> list[Finding]:
    """The claim on every (model, corpus) pair table."""
    return [finding(TL_LINEAR, m, c, selection, median_linearity(t)) for (m, c), t in tables.items()]
