"""Pass 2 over one token shard: unit-vector sums of the standardized states (rule dimensions_standardized)."""

from layergeom.analyses.dimensions.table import write_standardized
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_standardized(
        sm.input.states,
        sm.input.tokens,
        sm.input.standardize,
        sm.params.selection,
        sm.wildcards.shard,
        sm.params.block_tokens,
        sm.output.parts,
    )
