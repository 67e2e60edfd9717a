"""Intrinsic dimension of every layer on one bounded token subsample (rule anisotropy_id)."""

from layergeom.anisotropy import id_table
from layergeom.atomic import write_parquet
from layergeom.joblog import job_logging
from layergeom.selection import token_mask
from layergeom.store import open_hidden, read_tokens

with job_logging(snakemake.log[0]):
    sel = snakemake.params.selection
    tokens = read_tokens(snakemake.input.tokens)
    mask = token_mask(tokens, sel["include_special"], sel["exclude_first_position"])
    table = id_table(open_hidden(snakemake.input.states), tokens, mask, snakemake.params.settings,
                     snakemake.params.block_tokens)
    write_parquet(table, snakemake.output.table)
