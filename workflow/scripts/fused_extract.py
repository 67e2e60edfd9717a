"""Fused mode: one token shard's forward pass into every planned analysis' accumulators (rule fused_extract)."""

from layergeom.analyses.jobs import run_fused_shard
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_fused_shard(
        sm.params.spec,
        sm.wildcards.model,
        sm.input.documents,
        sm.input.sentences,
        sm.input.tokens,
        sm.input.header,
        sm.output.parts,
        sm.wildcards.shard,
        sm.params.plans,
        sm.params.budget_gb,
        sm.threads,
    )
