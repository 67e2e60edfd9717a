"""Anisotropy and intrinsic dimension over relative depth, all models of one corpus (rule anisotropy_figures)."""

from layergeom.analyses.anisotropy.plots import corpus_figures
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    corpus_figures(list(sm.input.tables), sm.wildcards.corpus, sm.params.selection, sm.params.settings, sm.output)
