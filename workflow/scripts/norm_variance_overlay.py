"""Cross-model figures of one corpus over relative depth (rule norm_variance_overlay)."""

from layergeom.analyses.norm_variance.plots import corpus_figures
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    corpus_figures(sm.params.models, list(sm.input.tables), sm.wildcards.corpus, sm.output)
