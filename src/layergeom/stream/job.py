"""A stream shard job: every analysis planned for a pair, fed from one pass over its shard of the store."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import polars as pl

from layergeom.io.shards import parse_shard, shard_range
from layergeom.io.store import block_step, open_hidden, read_tokens
from layergeom.stream.driver import Feed, stream_to_folder

log = logging.getLogger("layergeom")


def stream_shard(
    states: str | os.PathLike,
    tokens: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard: str,
    feeds_of: Callable[[pl.DataFrame], list[Feed]],
    block_tokens: int | None = None,
) -> None:
    """Stream shard ``k-of-n`` of a store through the feeds ``feeds_of(token table)`` into ``out_dir``."""
    array = open_hidden(states)
    table = read_tokens(tokens, array)
    if table.height != array.shape[1]:
        raise ValueError(f"{tokens} has {table.height} rows but {states} stores {array.shape[1]} tokens")
    feeds = feeds_of(table)
    token_range = shard_range(array.shape[1], block_step(array, block_tokens), *parse_shard(shard))
    log.info(
        "shard %s: tokens %d..%d of %d, %d layers, accumulators %s",
        shard,
        *token_range,
        array.shape[1],
        array.shape[0],
        sorted({f.name for f in feeds}),
    )
    stream_to_folder(array, feeds, out_dir, token_range, block_tokens, shard)
