"""Per-layer norms of one store (rule summary)."""

from layergeom.atomic import write_parquet
from layergeom.joblog import job_logging
from layergeom.selection import token_mask
from layergeom.store import open_hidden, read_tokens
from layergeom.summary import layer_norms

with job_logging(snakemake.log[0]) as log:
    sel = snakemake.params.selection
    mask = token_mask(read_tokens(snakemake.input.tokens), sel["include_special"], sel["exclude_first_position"])
    table = layer_norms(open_hidden(snakemake.input.states), mask)
    log.info("%d layers, %d tokens selected", table.height, int(mask.sum()))
    write_parquet(table, snakemake.output.table)
