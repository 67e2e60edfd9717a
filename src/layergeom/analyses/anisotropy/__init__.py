"""Anisotropy (mean pairwise cosine, covariance spectrum) and intrinsic dimension per layer [SL, AS]."""

from layergeom.analyses.anisotropy import accumulate, merge, metrics
from layergeom.analyses.spec import Analysis, Evidence, Figure, FigureSet, drawn_by
from layergeom.config import model_corpora, trained_runs
from layergeom.findings import anisotropy as claims
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import Scatter, UnitSum


def facts(config: dict, selection: dict) -> dict:
    """The token selection and the intrinsic-dimension settings (figures, captions and the findings page)."""
    settings = config["anisotropy"]["id"]
    return {
        "selection": selection,
        "settings": settings,
        "id_sample": f"intrinsic dimension on the {settings['sample']} {settings['n_points']} tokens",
        "families": {
            family: {"architecture": run["architecture"], "vocab_size": run["vocab_size"]}
            for family, run in trained_runs(config).items()
        },
    }


def judge(evidence: Evidence) -> list:
    """Every claim on the anisotropy tables: depth claims on the depth tables, training claims on the checkpoints."""
    notes = evidence.notes
    return claims.findings(
        dict(evidence.depth), dict(evidence.training), evidence.tokens, notes["id_sample"], notes["families"]
    )


def has_baselines(config: dict, corpus: str) -> bool:
    """Whether a corpus has a trained model and its untrained twin (the trained-versus-random figure)."""
    return bool(random_baselines(config, corpus))


def random_baselines(config: dict, corpus: str) -> list[tuple[str, str]]:
    """(trained, untrained) model pairs on a corpus with the same source and revision, in config order."""
    entries = config["models"]
    models = [m for m in entries if corpus in model_corpora(config, m)]
    return metrics.random_baselines(
        [(m, entries[m]["source"], entries[m].get("revision"), entries[m]["init"]) for m in models]
    )


ANALYSIS = Analysis(
    name="anisotropy",
    what="mean pairwise cosine (uncentered and centered), top singular share and effective rank of the centered "
    "covariance, TwoNN, [SL]'s and Levina-Bickel intrinsic dimension",
    feeds=accumulate.feeds,
    fused_feeds=lambda tokens, selection, section: accumulate.fused_feeds(tokens, selection, section["id"]),
    kinds=(UnitSum, Scatter, PointSample),
    merge=merge.merge,
    outputs={"spectrum": "parts/spectrum.parquet", "means": "parts/means.npy"},
    temporary=True,
    facts=facts,
    corpus_figures=(
        FigureSet(
            "figures",
            drawn_by("layergeom.analyses.anisotropy.plots", "corpus_figures"),
            (
                Figure("anisotropy", "anisotropy", "anisotropy_curves", "anisotropy over depth"),
                Figure(
                    "intrinsic_dimension",
                    "intrinsic_dimension",
                    "anisotropy_id",
                    "intrinsic dimension over depth",
                ),
            ),
        ),
        FigureSet(
            "random_figure",
            drawn_by("layergeom.analyses.anisotropy.plots", "random_figures"),
            (Figure("figure", "trained_vs_random", "anisotropy_random", "trained versus random init"),),
            when=has_baselines,
        ),
    ),
    training=("mean_cos", "sigma1_share", "sl_id", "twonn_id"),
    claims=claims.CLAIMS,
    findings=judge,
)
