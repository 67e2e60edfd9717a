"""Massive activations [MA]: per layer the largest |x| of a hidden-state entry against the median |x|."""

from layergeom.analyses.massive import accumulate, histogram, merge
from layergeom.analyses.massive.histogram import AbsHistogram
from layergeom.analyses.massive.top import TopEntries
from layergeom.analyses.spec import Analysis, Figure, FigureSet, depth_claims, drawn_by
from layergeom.findings import massive as claims


def facts(config: dict, selection: dict) -> dict:
    """The token selection, top_k, the histogram's bins and the criterion (figure caption, findings page)."""
    return {
        "selection": selection,
        "top_k": config["massive"]["top_k"],
        "bins": f"{histogram.BINS} log-spaced bins over [{histogram.LOW:g}, {histogram.HIGH:g})",
        "resolution": f"{histogram.RESOLUTION:.1%}",
        "criterion": claims.CRITERION,
    }


ANALYSIS = Analysis(
    name="massive",
    what="largest |x| of a hidden-state entry (its dimension, position and token), the median |x| from a "
    f"histogram and their ratio; massive: {claims.CRITERION}",
    feeds=accumulate.feeds,
    kinds=(TopEntries, AbsHistogram),
    merge=merge.merge,
    outputs={"table": "layers.parquet", "top": "top.parquet"},
    settings=("top_k",),
    facts=facts,
    corpus_figures=(
        FigureSet(
            "figure",
            drawn_by("layergeom.analyses.massive.plots", "depth_figure"),
            (Figure("depth", "depth", "massive_depth", "max and median |x| over depth"),),
        ),
    ),
    claims=claims.CLAIMS,
    findings=depth_claims(claims.findings),
)
