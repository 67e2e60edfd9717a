"""Stream one token shard of a contexts-mode store into partial posctx sums (all layers)."""

from layergeom.joblog import job_logging
from layergeom.posctx import run_shard

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_shard(
        sm.input.states,
        sm.input.tokens,
        sm.output.part,
        shard=int(sm.wildcards.shard),
        n_shards=int(sm.wildcards.shards),
        block_tokens=sm.params.block_tokens,
        **sm.params.selection,
    )
