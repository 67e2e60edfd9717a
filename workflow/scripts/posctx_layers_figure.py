"""The posctx table's quantities over relative depth for every model on one corpus (rule posctx_layers_figure)."""

from layergeom.analyses.posctx.plots import corpus_figure
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    corpus_figure(sm.params.models, list(sm.input.tables), sm.wildcards.corpus, sm.output.figure)
