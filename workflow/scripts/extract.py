"""Extract every layer's hidden states of one model on one corpus (rule extract)."""

from layergeom.extraction.jobs import run_extract_job
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_extract_job(
        sm.params.spec,
        sm.wildcards.model,
        sm.wildcards.corpus,
        sm.input.documents,
        sm.input.sentences,
        sm.output.states,
        sm.output.tokens,
        sm.threads,
    )
