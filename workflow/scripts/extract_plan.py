"""Prepare the partial store and token table that the extraction shards fill (rule extract_plan)."""

from layergeom.extraction.jobs import run_prepare_job
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_prepare_job(
        sm.params.spec,
        sm.wildcards.model,
        sm.wildcards.corpus,
        sm.input.documents,
        sm.input.sentences,
        sm.params.states,
        sm.params.tokens,
        sm.output.plan,
    )
