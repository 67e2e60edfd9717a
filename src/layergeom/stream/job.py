"""A stream shard job: every analysis planned for a pair, fed from one pass over its shard of the store."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable

import polars as pl

from layergeom.io.store import block_step, open_hidden, read_tokens
from layergeom.stream.driver import Feed, stream_to_folder
from layergeom.stream.shards import parse_shard, shard_range

log = logging.getLogger("layergeom")


def analysis_feeds(analysis: str, tokens: pl.DataFrame, selection: dict) -> list[Feed]:
    """The feeds of one analysis: ``layergeom.analyses.<analysis>.accumulate.feeds(tokens, selection)``."""
    module = importlib.import_module(f"layergeom.analyses.{analysis}.accumulate")
    return module.feeds(tokens, selection)


def fused_feeds(analysis: str, tokens: pl.DataFrame, selection: dict, settings: dict | None) -> list[Feed]:
    """What an analysis also takes from a fused extraction (there is no store to read later): its module's
    ``fused_feeds(tokens, selection, settings)``, none if it has no such function or ``settings`` is None."""
    module = importlib.import_module(f"layergeom.analyses.{analysis}.accumulate")
    hook = getattr(module, "fused_feeds", None)
    return [] if hook is None or settings is None else hook(tokens, selection, settings)


def stream_shard(
    states: str | os.PathLike,
    tokens: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard: str,
    feeds_of: Callable[[pl.DataFrame], list[Feed]],
    block_tokens: int | None = None,
) -> None:
    """Stream shard ``k-of-n`` of a store through the feeds ``feeds_of(token table)`` into ``out_dir``."""
    array, table = open_hidden(states), read_tokens(tokens)
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
    stream_to_folder(array, feeds, out_dir, token_range, block_tokens)


def run_stream_shard(
    states: str | os.PathLike,
    tokens: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard: str,
    plans: dict[str, dict],
    block_tokens: int | None = None,
) -> None:
    """The stream rule: shard ``k-of-n`` of a store through the accumulators of every planned analysis."""

    def feeds_of(table: pl.DataFrame) -> list[Feed]:
        return [feed for analysis, selection in plans.items() for feed in analysis_feeds(analysis, table, selection)]

    stream_shard(states, tokens, out_dir, shard, feeds_of, block_tokens)
