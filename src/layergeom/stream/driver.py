"""The one driver: stream a store layer by layer through any set of accumulators, one read per block for all."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import zarr

from layergeom.io.atomic import atomic_output
from layergeom.io.integrity import chunks_of
from layergeom.io.store import iter_layer, prefetched
from layergeom.joblog import Progress
from layergeom.stream.protocol import Accumulator, part_path, save
from layergeom.stream.selection import mask_digest

log = logging.getLogger("layergeom")


@dataclass(frozen=True)
class Feed:
    """One accumulator per layer, named ``name``, fed the rows of every block where ``mask`` holds.

    Feeds of the same name are one accumulator (a shared scatter, say), so they must select the same tokens.
    """

    name: str
    mask: np.ndarray  # (tokens,) bool over the token table
    make: Callable[[int, int], Accumulator]  # (layer, d) -> empty accumulator


def unique_feeds(feeds: Sequence[Feed]) -> list[Feed]:
    """The feeds with each name once; two feeds of one name that select different tokens are an error."""
    chosen: dict[str, Feed] = {}
    for feed in feeds:
        seen = chosen.setdefault(feed.name, feed)
        if seen is not feed and not np.array_equal(seen.mask, feed.mask):
            raise ValueError(f"two feeds named '{feed.name}' select different tokens")
    return list(chosen.values())


def check_finite(values: np.ndarray, rows: np.ndarray, where: str, layer: int) -> None:
    """Refuse non-finite hidden states, naming the store, the layer and the first token rows concerned."""
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        found = rows[bad]
        raise ValueError(
            f"{where}: layer {layer} has non-finite hidden states in {found.size} token rows "
            f"(first: {found[:5].tolist()}); a missing chunk reads as NaN: check the store with `snakemake verify`"
        )


def stream_layers(
    array: zarr.Array,
    feeds: Sequence[Feed],
    layers: Sequence[int] | None = None,
    token_range: tuple[int, int] | None = None,
    block_tokens: int | None = None,
) -> Iterator[tuple[int, dict[str, Accumulator]]]:
    """Yield (layer, accumulators by feed name) once every block of the layer in ``token_range`` is in."""
    feeds = unique_feeds(feeds)
    start, stop = token_range or (0, array.shape[1])
    union = np.zeros(array.shape[1], dtype=bool)
    groups: dict[str, tuple[np.ndarray, list[str]]] = {}
    for feed in feeds:
        if feed.mask.shape != (array.shape[1],):
            raise ValueError(
                f"feed '{feed.name}': mask of shape {feed.mask.shape} for a store of {array.shape[1]} tokens"
            )
        union |= feed.mask
        groups.setdefault(mask_digest(feed.mask), (feed.mask, []))[1].append(feed.name)
    union[:start] = False
    union[stop:] = False
    layers = list(range(array.shape[0]) if layers is None else layers)
    d = array.shape[2]
    where = str(getattr(array.store, "root", array.store))
    progress = Progress(len(layers) * int(union.sum()), "token-layers")
    for layer in layers:
        accumulators = {feed.name: feed.make(layer, d) for feed in feeds}
        for block in prefetched(iter_layer(array, layer, union, block_tokens)):
            check_finite(
                block.values, block.rows, f"{where} ({chunks_of(array, layer, block.start, block.stop)})", layer
            )
            for mask, names in groups.values():
                local = mask[block.rows]
                values, rows = (block.values, block.rows) if local.all() else (block.values[local], block.rows[local])
                for name in names:
                    accumulators[name].update(values, rows)
            progress.update(len(block.rows))
        yield layer, accumulators
    progress.update(0, force=True)


def stream_to_folder(
    array: zarr.Array,
    feeds: Sequence[Feed],
    out_dir: str | os.PathLike,
    token_range: tuple[int, int] | None = None,
    block_tokens: int | None = None,
) -> None:
    """Stream every layer and write its partial accumulators to ``out_dir/layer_NNN.npz`` (atomically)."""
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        for layer, accumulators in stream_layers(array, feeds, None, token_range, block_tokens):
            save(part_path(tmp, layer), accumulators)
