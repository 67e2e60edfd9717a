"""Norm of the mean against variance of token types [NV]: per-type moments, the fit V = a + b M, the shares of
M, V_B and V_W in Q."""

from layergeom.analyses.norm_variance import accumulate, merge
from layergeom.analyses.norm_variance.metrics import Exclusions, describe_exclusions
from layergeom.analyses.spec import Analysis, Figure, FigureSet, depth_claims, drawn_by
from layergeom.findings import norm_variance as claims
from layergeom.stats.moments import GroupedMoments
from layergeom.stream.selection import describe


def facts(config: dict, selection: dict) -> dict:
    """What the figures and captions state: token selection, count range, type key, exclusions, top Q lines."""
    section = config["norm_variance"]
    return {
        "selection_text": describe(**selection),
        "filtered_text": describe_exclusions(Exclusions.from_settings(section["exclude"])),
        "min_count": section["min_count"],
        "type_key": section["type_key"],
        "max_count": section["max_count"],
        "outlier_factor": section["exclude"]["outlier_factor"],
        "lines": section["top_q"],
    }


def figure(key: str, caption: str, label: str) -> Figure:
    """A figure whose file is its key."""
    return Figure(key, key, caption, label)


ANALYSIS = Analysis(
    name="norm_variance",
    what="per layer, both variants (all types / outliers excluded): fit V = a + b M over token types, cv_q, "
    "shares of M_all, V_B and V_W in Q_all",
    covers=lambda config, model, corpus: (
        config["corpora"][corpus]["sequences"]["mode"] in config["norm_variance"]["modes"]
    ),
    feeds=accumulate.feeds,
    kinds=(GroupedMoments,),
    merge=merge.merge,
    outputs={
        "types": "token_types.parquet",
        "layers": "layers.parquet",
        "top": "top_q.parquet",
        "pca": "type_pca.parquet",
    },
    settings=("min_count", "max_count", "top_q", "type_key", "exclude"),
    facts=facts,
    pair_figures=(
        FigureSet(
            "figures",
            drawn_by("layergeom.analyses.norm_variance.plots", "pair_figures"),
            (
                Figure("scatter_all", "scatter_all", "norm_variance_scatter", "V against M, all"),
                Figure("scatter_filtered", "scatter_filtered", "norm_variance_scatter", "V against M, filtered"),
                figure("top_q", "norm_variance_top_q", "largest Q"),
                figure("histograms", "norm_variance_histograms", "Q, M, V over types"),
                figure("type_pca", "norm_variance_type_pca", "PCA of the type means"),
            ),
        ),
    ),
    corpus_figures=(
        FigureSet(
            "overlay",
            drawn_by("layergeom.analyses.norm_variance.plots", "corpus_figures"),
            (
                figure("slope_r2", "norm_variance_slope_r2", "slope and R² over depth"),
                figure("cv_q", "norm_variance_cv_q", "cv of Q over depth"),
                figure("shares", "norm_variance_shares", "shares of Q_all over depth"),
                figure("vw_over_v", "norm_variance_vw_over_v", "V_W / V_all over depth"),
            ),
        ),
    ),
    training=("m_share", "vb_share", "vw_share", "slope"),
    training_where={"variant": "all"},
    claims=claims.CLAIMS,
    findings=depth_claims(claims.findings),
)
