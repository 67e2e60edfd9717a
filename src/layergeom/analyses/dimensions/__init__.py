"""Per-dimension contributions to the mean cosine (rogue dimensions [RD]), the mean cosine of standardized states
and IsoScore [IS] per layer."""

from layergeom.analyses.dimensions import accumulate, merge
from layergeom.analyses.spec import Analysis, Figure, FigureSet, depth_claims, drawn_by
from layergeom.findings import dimensions as claims
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import Scatter, UnitSum


def facts(config: dict, selection: dict) -> dict:
    """The token selection, top_k and the fused-mode sample (figures, captions and the findings page)."""
    section = config["dimensions"]
    return {"selection": selection, "top_k": section["top_k"], "sample": section["sample"]}


ANALYSIS = Analysis(
    name="dimensions",
    what="each dimension's contribution to the mean pairwise cosine (top1/top3/top10_share of mean_cos, the top_k "
    "dimensions and their shares), the mean cosine of standardized states and IsoScore of the covariance",
    feeds=accumulate.feeds,
    fused_feeds=lambda tokens, selection, section: accumulate.fused_feeds(tokens, selection, section["sample"]),
    kinds=(accumulate.UnitSquares, Scatter, UnitSum, PointSample),
    merge=merge.merge,
    outputs={"layers": "parts/layers.parquet", "standardize": "parts/standardize.npy"},
    temporary=True,
    facts=facts,
    corpus_figures=(
        FigureSet(
            "figures",
            drawn_by("layergeom.analyses.dimensions.plots", "corpus_figures"),
            (
                Figure("shares", "top_shares", "dimensions_shares", "top dimensions' share of the mean cosine"),
                Figure("isotropy", "isotropy", "dimensions_isotropy", "raw and standardized mean cosine, IsoScore"),
            ),
        ),
    ),
    claims=claims.CLAIMS,
    findings=depth_claims(claims.findings),
)
