"""The merge of one registered analysis for one (model, corpus) pair (rule <analysis>_merge)."""

from layergeom.analyses.jobs import run_merge
from layergeom.analyses.spec import MergeJob
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    job = MergeJob(
        sm.input.states, sm.input.tokens, list(sm.input.parts), dict(sm.output), sm.params.settings, sm.params.selection
    )
    run_merge(sm.params.analysis, job)
