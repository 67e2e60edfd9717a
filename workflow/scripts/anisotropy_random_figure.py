"""Each trained model beside its random-init twin of the same source and revision (rule anisotropy_random_figure)."""

from layergeom.analyses.anisotropy.plots import random_figure
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    random_figure(list(sm.input.tables), sm.wildcards.corpus, sm.params.selection, sm.output.figure)
