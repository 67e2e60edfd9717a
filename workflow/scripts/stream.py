"""One token shard of a store through every analysis planned for the pair (rule stream)."""

from layergeom.analyses.jobs import run_stream_shard
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_stream_shard(
        sm.input.states, sm.input.tokens, sm.output.parts, sm.wildcards.shard, sm.params.plans, sm.params.block_tokens
    )
