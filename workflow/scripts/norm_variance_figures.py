"""Per model and corpus: V vs M, largest Q, Q/M/V histograms, type-mean PCA (rule norm_variance_figures)."""

from layergeom.analyses.norm_variance.plots import model_figures
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    model_figures(
        sm.input.types,
        sm.input.layers,
        sm.input.top,
        sm.input.pca,
        f"{sm.wildcards.model} on {sm.wildcards.corpus}",
        sm.params.outlier_factor,
        sm.params.lines,
        sm.output,
    )
