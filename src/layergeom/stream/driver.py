"""The one driver: stream a store layer by layer through any set of accumulators, one read per block for all."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import zarr

from layergeom.io.atomic import atomic_output
from layergeom.io.integrity import chunks_of
from layergeom.io.store import Block, iter_layer, prefetched, store_id
from layergeom.joblog import Progress
from layergeom.stats.device import finite_rows, side_by_side, take_rows
from layergeom.stats.protocol import Accumulator, Slot, part_path, save
from layergeom.stream.selection import mask_digest

if TYPE_CHECKING:
    from layergeom.stats.device import Values

log = logging.getLogger("layergeom")


@dataclass(frozen=True)
class Feed:
    """One accumulator per layer, named ``name``, fed the rows of every block where ``mask`` holds.

    Feeds of the same name are one accumulator (a shared scatter, say), so they must select the same tokens.
    With ``block``, the accumulator is fed by merges of ``block(values)``, computed once per cell of tokens that
    the same feeds of that ``block`` select, so overlapping selections share the work. A ``pair`` feed is fed a
    layer and the next stored layer side by side, rows (h_l, h_next) of width 2d, and saved under layer l; the
    last layer has none.
    """

    name: str
    mask: np.ndarray  # (tokens,) bool over the token table
    make: Callable[[int, int], Accumulator]  # (layer, width: d, or 2d for a pair) -> empty accumulator
    block: Callable[[Values], Accumulator] | None = None  # rows -> their own accumulator, to merge
    pair: bool = False  # fed (h_l, h_next) side by side


def unique_feeds(feeds: Sequence[Feed]) -> list[Feed]:
    """The feeds with each name once; two feeds of one name that select different tokens are an error."""
    chosen: dict[str, Feed] = {}
    for feed in feeds:
        seen = chosen.setdefault(feed.name, feed)
        if seen is not feed and not np.array_equal(seen.mask, feed.mask):
            raise ValueError(f"two feeds named '{feed.name}' select different tokens")
    return list(chosen.values())


def token_cells(feeds: Sequence[Feed], n_tokens: int) -> list[tuple[np.ndarray, Callable, list[str]]]:
    """(cell mask, block, feed names): the tokens split into cells that the same feeds of one ``block`` select."""
    kinds: dict[Callable, list[Feed]] = {}
    for feed in feeds:
        kinds.setdefault(feed.block, []).append(feed)
    cells = []
    for block, kind in kinds.items():
        if len(kind) > 62:
            raise ValueError(f"{len(kind)} feeds share one block kind; at most 62 can be split into cells")
        code = np.zeros(n_tokens, np.int64)
        for bit, feed in enumerate(kind):
            code |= feed.mask.astype(np.int64) << bit
        for value in np.unique(code[code > 0]):
            cells.append((code == value, block, [feed.name for bit, feed in enumerate(kind) if value >> bit & 1]))
    return cells


def check_finite(values: Values, rows: np.ndarray, where: str, layer: int) -> None:
    """Refuse non-finite hidden states, naming the store, the layer and the first token rows concerned."""
    bad = ~finite_rows(values)
    if bad.any():
        found = rows[bad]
        raise ValueError(
            f"{where}: layer {layer} has non-finite hidden states in {found.size} token rows "
            f"(first: {found[:5].tolist()}); a missing chunk reads as NaN: check the store with `snakemake verify`"
        )


class FeedSet:
    """The unique feeds of a token table grouped by mask: the one place blocks (read from a store or fresh
    from a forward pass) are checked and handed to every feed's accumulator."""

    def __init__(self, feeds: Sequence[Feed], n_tokens: int, where: str) -> None:
        self.feeds = unique_feeds(feeds)
        self.where = where
        self.union = np.zeros(n_tokens, dtype=bool)
        self.groups: dict[str, tuple[np.ndarray, list[str]]] = {}
        for feed in self.feeds:
            if feed.mask.shape != (n_tokens,):
                raise ValueError(f"feed '{feed.name}': mask of shape {feed.mask.shape} for {n_tokens} tokens ({where})")
            self.union |= feed.mask
            if feed.block is None:
                self.groups.setdefault(mask_digest(feed.mask), (feed.mask, []))[1].append(feed.name)
        self.cells = token_cells([feed for feed in self.feeds if feed.block is not None], n_tokens)

    def start(self, layer: int, d: int) -> dict[str, Accumulator]:
        """Empty accumulators of one layer, by feed name."""
        return {feed.name: feed.make(layer, d) for feed in self.feeds}

    def feed(
        self, accumulators: dict[str, Accumulator], layer: int, values: Values, rows: np.ndarray, where: str = ""
    ) -> None:
        """Check a block of one layer (numpy or torch, float64; ``where``: its chunks) and add its rows to every
        feed that selects them; each distinct subset of rows is taken once."""
        check_finite(values, rows, where or self.where, layer)
        subsets: dict[bytes, tuple[Values, np.ndarray]] = {}

        def picked(mask: np.ndarray) -> tuple[Values, np.ndarray] | None:
            local = mask[rows]
            if not local.any():
                return None
            if local.all():
                return values, rows
            key = np.packbits(local).tobytes()
            if key not in subsets:
                subsets[key] = take_rows(values, local), rows[local]
            return subsets[key]

        for mask, names in self.groups.values():
            if (subset := picked(mask)) is not None:
                for name in names:
                    accumulators[name].update(*subset)
        for mask, block, names in self.cells:
            if (subset := picked(mask)) is not None:
                part = block(subset[0])
                for name in names:
                    accumulators[name].merge(part)


class LayerFeeds:
    """The feeds of one pass: a FeedSet of single layers and one of pairs (a layer beside the next stored layer)."""

    def __init__(self, feeds: Sequence[Feed], n_tokens: int, where: str) -> None:
        self.single = FeedSet([feed for feed in feeds if not feed.pair], n_tokens, where)
        self.pairs = FeedSet([feed for feed in feeds if feed.pair], n_tokens, where)
        clash = {feed.name for feed in self.single.feeds} & {feed.name for feed in self.pairs.feeds}
        if clash:
            raise ValueError(f"feeds {sorted(clash)} are both single-layer and pair feeds")
        self.feeds, self.where = self.single.feeds + self.pairs.feeds, where
        self.union = self.single.union | self.pairs.union

    def pairs_at(self, last: bool) -> bool:
        """Whether a layer's blocks need the next layer's (it has pair feeds and is not the last layer)."""
        return bool(self.pairs.feeds) and not last

    def start(self, layer: int, d: int, last: bool = False) -> dict[str, Accumulator]:
        """Empty accumulators of one layer, by feed name; the pairs' (width 2d) unless it is the last layer."""
        accumulators = self.single.start(layer, d)
        if self.pairs_at(last):
            accumulators |= self.pairs.start(layer, 2 * d)
        return accumulators

    def feed(
        self,
        accumulators: dict[str, Accumulator],
        layer: int,
        values: Values,
        rows: np.ndarray,
        where: str = "",
        following: Values | None = None,
        following_where: str = "",
    ) -> None:
        """Add a block of one layer to the single feeds and, with the next layer's same rows (read from
        ``following_where``), to the pair feeds."""
        self.single.feed(accumulators, layer, values, rows, where)
        if following is not None:
            check_finite(following, rows, following_where or where or self.where, layer + 1)
            self.pairs.feed(accumulators, layer, side_by_side(values, following), rows, where)


def stream_layers(
    array: zarr.Array,
    feeds: Sequence[Feed],
    layers: Sequence[int] | None = None,
    token_range: tuple[int, int] | None = None,
    block_tokens: int | None = None,
) -> Iterator[tuple[int, dict[str, Accumulator]]]:
    """Yield (layer, accumulators by feed name) once every block of the layer in ``token_range`` is in."""
    feed_set = LayerFeeds(feeds, array.shape[1], str(getattr(array.store, "root", array.store)))
    start, stop = token_range or (0, array.shape[1])
    union = feed_set.union.copy()
    union[:start] = False
    union[stop:] = False
    layers = list(range(array.shape[0]) if layers is None else layers)
    progress = Progress(len(layers) * int(union.sum()), "token-layers")
    for layer in layers:
        last = layer + 1 == array.shape[0]
        accumulators = feed_set.start(layer, array.shape[2], last)
        for block, following in prefetched(layer_blocks(array, layer, union, block_tokens, feed_set.pairs_at(last))):
            where = f"{feed_set.where} ({chunks_of(array, layer, block.start, block.stop)})"
            after = f"{feed_set.where} ({chunks_of(array, layer + 1, block.start, block.stop)})" if not last else ""
            feed_set.feed(accumulators, layer, block.values, block.rows, where, following, after)
            progress.update(len(block.rows))
        yield layer, accumulators
    progress.update(0, force=True)


def layer_blocks(
    array: zarr.Array, layer: int, union: np.ndarray, block_tokens: int | None, pairs: bool
) -> Iterator[tuple[Block, Values | None]]:
    """(block, the same rows of the next stored layer when ``pairs``, else None) of one layer."""
    blocks = iter_layer(array, layer, union, block_tokens)
    if not pairs:
        return ((block, None) for block in blocks)
    following = iter_layer(array, layer + 1, union, block_tokens)  # the same blocks: same mask and step
    return ((block, after.values) for block, after in zip(blocks, following))


def stream_to_folder(
    array: zarr.Array,
    feeds: Sequence[Feed],
    out_dir: str | os.PathLike,
    token_range: tuple[int, int] | None = None,
    block_tokens: int | None = None,
    shard: str = "0-of-1",
) -> None:
    """Stream every layer and write its partial accumulators, with the slot they cover (layer, shard ``k-of-n``,
    token range, store), to ``out_dir/layer_NNN.npz`` (atomically)."""
    start, stop = token_range or (0, array.shape[1])
    store = store_id(array.attrs)
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        for layer, accumulators in stream_layers(array, feeds, None, token_range, block_tokens):
            save(part_path(tmp, layer), accumulators, Slot(layer, shard, start, stop, store))
