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
from layergeom.stats.device import finite_rows, take_rows
from layergeom.stats.protocol import Accumulator, Slot, background_saves, part_path
from layergeom.stream.selection import mask_digest

if TYPE_CHECKING:
    from layergeom.stats.device import Values

log = logging.getLogger("layergeom")


@dataclass(frozen=True)
class Feed:
    """One accumulator per layer, named ``name``, fed the rows of every block where ``mask`` holds.

    Feeds of the same name are one accumulator (a shared scatter, say), so they must select the same tokens.
    With ``block``, the accumulator is fed by merges of ``block(values)``, computed once per cell of tokens that
    the same feeds of that ``block`` select, so overlapping selections share the work. A pair feed is fed a layer's
    rows with the same rows of later stored layers, a tuple (h_l, h_next) for ``pairs="next"`` and (h_l, every later
    stored layer) for ``pairs="every"``, and saved under layer l; the last layer has none.
    """

    name: str
    mask: np.ndarray  # (tokens,) bool over the token table
    make: Callable[..., Accumulator]  # (layer, d), for a pair feed (layer, d, later layers) -> empty accumulator
    block: Callable[[Values], Accumulator] | None = None  # rows -> their own accumulator, to merge
    pairs: str = ""  # "": one layer; "next": with the next stored layer; "every": with every later one


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
        self,
        accumulators: dict[str, Accumulator],
        values: Values | tuple[Values, ...],
        rows: np.ndarray,
        subsets: dict[tuple[int, bytes], Values] | None = None,
    ) -> None:
        """Add a block of one layer (numpy or torch, float64, checked; a tuple of layers for pair feeds) to every
        feed that selects its rows; each distinct subset of an array's rows is taken once (``subsets``: shared)."""
        subsets = {} if subsets is None else subsets

        def taken(array: Values, local: np.ndarray, key: bytes) -> Values:
            if (id(array), key) not in subsets:
                subsets[id(array), key] = take_rows(array, local)
            return subsets[id(array), key]

        def picked(mask: np.ndarray) -> tuple[Values | tuple[Values, ...], np.ndarray] | None:
            local = mask[rows]
            if not local.any():
                return None
            if local.all():
                return values, rows
            key = np.packbits(local).tobytes()
            if isinstance(values, tuple):
                return tuple(taken(v, local, key) for v in values), rows[local]
            return taken(values, local, key), rows[local]

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
    """The feeds of one pass: a FeedSet of single layers, one of a layer with the next stored layer and one of a
    layer with every later stored layer."""

    def __init__(self, feeds: Sequence[Feed], n_tokens: int, where: str) -> None:
        kinds = {"": [], "next": [], "every": []}
        for feed in feeds:
            if feed.pairs not in kinds:
                raise ValueError(f"feed '{feed.name}': pairs must be '', 'next' or 'every', not {feed.pairs!r}")
            kinds[feed.pairs].append(feed)
        self.sets = {kind: FeedSet(chosen, n_tokens, where) for kind, chosen in kinds.items()}
        names = [feed.name for feed_set in self.sets.values() for feed in feed_set.feeds]
        clash = sorted({name for name in names if names.count(name) > 1})
        if clash:
            raise ValueError(f"feeds {clash} are fed both single layers and pairs, or pairs of two kinds")
        self.feeds, self.where = [feed for feed_set in self.sets.values() for feed in feed_set.feeds], where
        self.union = np.logical_or.reduce([feed_set.union for feed_set in self.sets.values()])

    def later(self, layer: int, n_layers: int) -> int:
        """How many of the next stored layers a layer's blocks are fed with (0 for the last layer)."""
        if self.sets["every"].feeds:
            return n_layers - 1 - layer
        return min(1, n_layers - 1 - layer) if self.sets["next"].feeds else 0

    def start(self, layer: int, d: int, later: int = 0) -> dict[str, Accumulator]:
        """Empty accumulators of one layer, by feed name, with ``later`` stored layers after it (pairs need one)."""
        accumulators = {feed.name: feed.make(layer, d) for feed in self.sets[""].feeds}
        if later:
            accumulators |= {feed.name: feed.make(layer, d, 1) for feed in self.sets["next"].feeds}
            accumulators |= {feed.name: feed.make(layer, d, later) for feed in self.sets["every"].feeds}
        return accumulators

    def feed(
        self,
        accumulators: dict[str, Accumulator],
        layer: int,
        values: Values,
        rows: np.ndarray,
        where: str = "",
        following: Sequence[Values] = (),
        following_where: Sequence[str] = (),
    ) -> None:
        """Check a block of one layer and the same rows of the later layers it is paired with (read from
        ``where`` and ``following_where``: their chunks) and add them to every feed."""
        check_finite(values, rows, where or self.where, layer)
        places = following_where or [""] * len(following)
        for step, (after, place) in enumerate(zip(following, places, strict=True)):
            check_finite(after, rows, place or where or self.where, layer + 1 + step)
        subsets: dict[tuple[int, bytes], Values] = {}
        self.sets[""].feed(accumulators, values, rows, subsets)
        if following:
            self.sets["next"].feed(accumulators, (values, following[0]), rows, subsets)
            self.sets["every"].feed(accumulators, (values, *following), rows, subsets)


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
        later = feed_set.later(layer, array.shape[0])
        accumulators = feed_set.start(layer, array.shape[2], later)
        for block, following in prefetched(layer_blocks(array, layer, union, block_tokens, later)):
            where = [
                f"{feed_set.where} ({chunks_of(array, m, block.start, block.stop)})"
                for m in (layer, *range(layer + 1, layer + 1 + later))
            ]
            feed_set.feed(accumulators, layer, block.values, block.rows, where[0], following, where[1:])
            progress.update(len(block.rows))
        yield layer, accumulators
    progress.update(0, force=True)


def layer_blocks(
    array: zarr.Array, layer: int, union: np.ndarray, block_tokens: int | None, later: int
) -> Iterator[tuple[Block, list[Values]]]:
    """(block, the same rows of the ``later`` next stored layers) of one layer."""
    blocks = iter_layer(array, layer, union, block_tokens)
    following = [iter_layer(array, m, union, block_tokens) for m in range(layer + 1, layer + 1 + later)]
    return ((block, [after.values for after in afters]) for block, *afters in zip(blocks, *following))


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
    with atomic_output(out_dir) as tmp, background_saves(1) as save:
        tmp.mkdir()
        for layer, accumulators in stream_layers(array, feeds, None, token_range, block_tokens):
            save(part_path(tmp, layer), accumulators, Slot(layer, shard, start, stop, store))  # while the next streams
