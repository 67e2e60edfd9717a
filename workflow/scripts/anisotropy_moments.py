"""Pass 1 over one token shard: unit-vector sums and centered scatter matrices (rule anisotropy_moments)."""

from layergeom.anisotropy import moments_pass
from layergeom.joblog import job_logging
from layergeom.selection import token_mask
from layergeom.store import open_hidden, read_tokens

with job_logging(snakemake.log[0]):
    sel = snakemake.params.selection
    mask = token_mask(read_tokens(snakemake.input.tokens), sel["include_special"], sel["exclude_first_position"])
    moments_pass(open_hidden(snakemake.input.states), mask, int(snakemake.wildcards.shard), snakemake.params.shards,
                 snakemake.output.parts, snakemake.params.block_tokens)
