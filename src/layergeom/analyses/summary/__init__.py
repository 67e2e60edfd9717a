"""Per-layer norms: token count, mean norm and mean squared norm of the selected tokens."""

from layergeom.analyses.spec import Analysis, Figure, FigureSet, drawn_by
from layergeom.analyses.summary import accumulate, merge

ANALYSIS = Analysis(
    name="summary",
    what="n_tokens, mean_norm and mean_sq_norm of the hidden states (uncentered)",
    feeds=accumulate.feeds,
    kinds=(accumulate.NormSums,),
    merge=merge.merge,
    outputs={"table": "layers.parquet"},
    facts=lambda config, selection: {"selection": selection},
    corpus_figures=(
        FigureSet(
            "figure",
            drawn_by("layergeom.analyses.summary.plots", "corpus_figures"),
            (Figure("norms", "norms", "summary_norms", "norms over layers"),),
        ),
    ),
    training=("mean_norm", "mean_sq_norm"),
)
