"""Mean norm over relative depth for every model on one corpus (rule summary_figure)."""

from layergeom.analyses.summary.plots import norms_figure
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    norms_figure(sm.params.models, list(sm.input.tables), sm.wildcards.corpus, sm.params.selection, sm.output.figure)
