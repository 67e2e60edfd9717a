"""Per-layer figures of one store's position and context components (rule posctx_figures)."""

from layergeom.analyses.posctx.plots import model_figures
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    model_figures(snakemake.input.components, snakemake.output)  # noqa: F821
