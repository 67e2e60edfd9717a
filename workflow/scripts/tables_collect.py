"""Stack every model's layer table of one analysis on one corpus (rule table)."""

from layergeom.io.tables import write_cross_model
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_cross_model(
        list(sm.input.tables),
        sm.params.models,
        sm.wildcards.analysis,
        sm.wildcards.corpus,
        sm.params.spec["what"],
        sm.params.spec["tokens"],
        sm.output,
    )
