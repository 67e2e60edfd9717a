"""Layer to layer: the linearity score of LLM-Microscope [TL] and linear CKA between consecutive stored layers."""

from layergeom.analyses.linearity import accumulate, merge
from layergeom.analyses.spec import Analysis, Figure, FigureSet, depth_claims, drawn_by
from layergeom.findings import linearity as claims
from layergeom.stats.scatter import CrossProduct, Scatter

ANALYSIS = Analysis(
    name="linearity",
    what="per pair of consecutive stored layers (layer -> next_layer): linearity score of h_next and of "
    "h_next - h_l on h_l (least squares, centered, Frobenius-normalised), linear CKA",
    covers=lambda config, model, corpus: config["linearity"]["enabled"],
    feeds=accumulate.feeds,
    kinds=(CrossProduct, Scatter),
    merge=merge.merge,
    outputs={"table": "layers.parquet"},
    facts=lambda config, selection: {"selection": selection},
    corpus_figures=(
        FigureSet(
            "figure",
            drawn_by("layergeom.analyses.linearity.plots", "corpus_figures"),
            (Figure("depth", "depth", "linearity_depth", "linearity and CKA over depth"),),
        ),
    ),
    claims=claims.CLAIMS,
    findings=depth_claims(claims.findings),
)
