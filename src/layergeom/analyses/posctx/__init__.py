"""Position and context decomposition h = mu + pos + ctx + resid of every contexts-mode store [PC]."""

from layergeom.analyses.posctx import accumulate, merge
from layergeom.analyses.spec import Analysis, Figure, FigureSet, depth_claims, drawn_by
from layergeom.findings import posctx as claims
from layergeom.stats.scatter import Scatter
from layergeom.stream.selection import describe


def facts(config: dict, selection: dict) -> dict:
    """What the figure captions state."""
    section = config["posctx"]
    return {
        **{k: section[k] for k in ("ctx_components", "smoothness_cutoff", "screenot_max_rank")},
        "selection": describe(**selection),
    }


ANALYSIS = Analysis(
    name="posctx",
    what="h = mu + pos + ctx + resid per layer: variance shares, ranks, relative norms, "
    "smoothness, context cosines, incoherence",
    covers=lambda config, model, corpus: config["corpora"][corpus]["sequences"]["mode"] == "contexts",
    feeds=accumulate.feeds,
    kinds=(accumulate.PosCtxSums, Scatter),
    merge=merge.merge,
    outputs={"components": "components.zarr", "table": "layers.parquet"},
    settings=("screenot_max_rank", "ctx_components", "smoothness_cutoff", "seed"),
    facts=facts,
    pair_figures=(
        FigureSet(
            "figures",
            drawn_by("layergeom.analyses.posctx.plots", "pair_figures"),
            (
                Figure("pca2", "pos_pca2", "posctx_pca", "pos on top 2 directions"),
                Figure("pca3", "pos_pca3", "posctx_pca", "pos on top 3 directions"),
                Figure("gram", "pos_gram", "posctx_gram", "pos cosine Gram"),
                Figure("ctx_cos", "ctx_cosines", "posctx_ctx_cosines", "ctx cosines by topic"),
                Figure("pos_ctx_cos", "pos_ctx_cosines", "posctx_pos_ctx_cosines", "pos-ctx cosines"),
            ),
        ),
    ),
    corpus_figures=(
        FigureSet(
            "layers_figure",
            drawn_by("layergeom.analyses.posctx.plots", "corpus_figures"),
            (Figure("figure", "layers", "posctx_layers", "posctx over layers"),),
        ),
    ),
    claims=claims.CLAIMS,
    findings=depth_claims(claims.findings),
)
