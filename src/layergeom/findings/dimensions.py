"""[RD] claim: a handful of rogue dimensions carry most of the mean cosine in the middle layers."""

from __future__ import annotations

import polars as pl

from layergeom.findings.verdicts import MIDDLE, Claim, Finding, Measure, at_least, finding, middle, not_applicable

TOP3_SHARE = 0.5
RD_ROGUE = Claim(
    "rd_rogue",
    "RD",
    "a few (1-3) rogue dimensions dominate the mean cosine in the middle layers",
    "1 to 3 dimensions dominate the cosine similarity",
    f"median over the middle layers (relative depth in [{MIDDLE[0]:.2f}, {MIDDLE[1]:.2f}]) of top3_share, the share "
    f"of mean_cos carried by the 3 largest per-dimension contributions, >= {TOP3_SHARE}; not applicable without a "
    "middle layer of positive mean_cos",
    '"We find that a small number of rogue dimensions, often just 1-3, dominate these measures." (abstract)',
)
CLAIMS = (RD_ROGUE,)


def rogue_middle(table: pl.DataFrame) -> Measure:
    """The median top-3 share of the middle layers (the share is NaN where mean_cos is not positive)."""
    stored = middle(table)
    rows = stored.filter(pl.col("top3_share").is_not_nan())
    if rows.height == 0:
        return not_applicable("mean cosine not positive in the middle layers" if stored.height else "no middle layer")
    value = float(rows["top3_share"].median())
    top1 = float(rows["top1_share"].median())
    return at_least(
        f"median top3_share {value:.3f} (top1 {top1:.3f}) over {rows.height} middle layer(s)", value, TOP3_SHARE
    )


def findings(tables: dict[tuple[str, str], pl.DataFrame], selection: str) -> list[Finding]:
    """The claim on every (model, corpus) table of the dimensions analysis."""
    return [finding(RD_ROGUE, model, corpus, selection, rogue_middle(t)) for (model, corpus), t in tables.items()]
