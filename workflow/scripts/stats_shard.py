"""Partial per-type moments of every layer over one token shard (rule stats_shard)."""

from layergeom.joblog import job_logging
from layergeom.norm_variance import accumulate_shard, type_keys
from layergeom.selection import token_mask
from layergeom.store import open_hidden, read_tokens

with job_logging(snakemake.log[0]) as log:
    shard, n_shards = (int(part) for part in snakemake.wildcards.shard.split("-of-"))
    array = open_hidden(snakemake.input.states)
    tokens = read_tokens(snakemake.input.tokens)
    selection = snakemake.params.selection
    mask = token_mask(tokens, selection["include_special"], selection["exclude_first_position"])
    keys = type_keys(tokens["token_id"].to_numpy(), tokens["position"].to_numpy())
    log.info(
        "shard %d of %d: %d layers, %d of %d tokens selected in the store",
        shard, n_shards, array.shape[0], int(mask.sum()), array.shape[1],
    )
    accumulate_shard(
        array, keys, mask, shard, n_shards, snakemake.output.parts, snakemake.params.block_tokens
    )
    log.info("wrote %s", snakemake.output.parts)
