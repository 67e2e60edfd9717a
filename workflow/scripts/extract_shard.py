"""Write one extraction shard's token region of the prepared store (rule extract_shard)."""

from layergeom.extraction.jobs import run_shard_job
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_shard_job(
        sm.params.spec,
        sm.wildcards.model,
        sm.wildcards.corpus,
        sm.input.documents,
        sm.input.sentences,
        sm.params.states,
        sm.wildcards.shard,
        sm.output.done,
        sm.threads,
    )
