"""Pass 2 over one token shard: unit-vector sums of the centered states (rule anisotropy_centered)."""

from layergeom.analyses.anisotropy.metrics import write_centered
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_centered(
        sm.input.states,
        sm.input.tokens,
        sm.input.means,
        sm.params.selection,
        sm.wildcards.shard,
        sm.params.block_tokens,
        sm.output.parts,
    )
