"""Pass 2 over one token shard: unit-vector sums of the centered states (rule anisotropy_centered)."""

import numpy as np

from layergeom.anisotropy import centered_pass
from layergeom.joblog import job_logging
from layergeom.selection import token_mask
from layergeom.spectrum import save_accumulators
from layergeom.store import open_hidden, read_tokens

with job_logging(snakemake.log[0]):
    sel = snakemake.params.selection
    mask = token_mask(read_tokens(snakemake.input.tokens), sel["include_special"], sel["exclude_first_position"])
    sums = centered_pass(open_hidden(snakemake.input.states), mask, np.load(snakemake.input.means),
                         int(snakemake.wildcards.shard), snakemake.params.shards, snakemake.params.block_tokens)
    save_accumulators(snakemake.output.part, sums)
