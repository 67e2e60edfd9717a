"""Fused extraction (``extraction.store: none``): the forward pass feeds every planned analysis' accumulators.

The token table and a header store (layer names and attributes, no tokens) are written first; each fused
job then runs the model over one token shard ``k-of-n`` and writes the same partial accumulators as the
stream rule, so the merges make the same tables. No hidden state reaches the disk or, on a GPU, the host.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import polars as pl
import torch

from layergeom.extraction.checks import check_inputs
from layergeom.extraction.forward import HiddenStates
from layergeom.extraction.jobs import load_job
from layergeom.extraction.memory import limit_heap_retention, reuse_heap
from layergeom.extraction.provenance import job_attrs, layers_to_store, model_attrs
from layergeom.extraction.sequences import Sequences, batches_in_range, ordered_ids, plan_batches, token_table
from layergeom.io import atomic, store
from layergeom.io.shards import parse_shard, shard_range
from layergeom.joblog import Progress
from layergeom.stats.device import on_host
from layergeom.stats.protocol import Accumulator, Slot, background_saves, part_path
from layergeom.stream.driver import Feed, LayerFeeds

log = logging.getLogger("layergeom")


def run_fused_tokens(
    spec: dict,
    model_name: str,
    corpus_name: str,
    documents: str | os.PathLike,
    sentences: str | os.PathLike,
    header_path: str | os.PathLike,
    tokens_path: str | os.PathLike,
    threads: int,
) -> None:
    """Write the token table and the header store (the store's attributes, no tokens) of a fused pair."""
    limit_heap_retention()
    loaded, seqs = load_job(spec, documents, sentences, threads)
    check_inputs(loaded, seqs, model_name, corpus_name, spec)
    order, _ = plan_batches(seqs.lengths(), spec["settings"]["batch_tokens"])
    table = token_table(seqs, order, loaded.tokenizer)
    runner = fused_runner(loaded, spec, model_name)
    runner(seqs, order[-1:])  # one short sequence tells whether the last hidden state is after the final norm
    final_flag = bool(runner.last_after_final_norm and not runner.residual_before_final_norm)
    attrs = {
        **job_attrs(spec, model_name, corpus_name, seqs),
        **model_attrs(loaded, runner, spec["settings"], table.height),
        "complete": True,
        "hidden_states_stored": False,
        "last_layer_after_final_norm": final_flag,
    }
    with atomic.atomic_output(header_path) as tmp:
        store.create_store(tmp, len(runner.layers), 0, loaded.d_model, "float32", 1, None, attrs)
    store.write_tokens(table, tokens_path, attrs)
    log.info("%d tokens in %d sequences; wrote %s and %s", table.height, len(order), tokens_path, header_path)


def fused_runner(loaded, spec: dict, model_name: str) -> HiddenStates:
    """The forward pass of a fused job, returning the layers of ``extraction.layers``."""
    layers = layers_to_store(spec["settings"], loaded.n_layers, model_name)
    return HiddenStates(loaded, spec["model"]["residual_before_final_norm"], layers)


def layer_bytes(feed_set: LayerFeeds, d: int, n_layers: int) -> int:
    """Bytes one layer's accumulators hold at most (the first layer's, with the most pairs): their own arrays, plus
    d x 8 per row for growing samples."""
    first, second = (feed_set.start(m, d, feed_set.later(m, max(n_layers, 2))) for m in (0, 1))
    shared = {id(v) for acc in second.values() for v in vars(acc).values()}
    total = 0
    for feed in feed_set.feeds:
        acc = first[feed.name]
        total += sum(v.nbytes for v in vars(acc).values() if isinstance(v, np.ndarray) and id(v) not in shared)
        total += getattr(acc, "ROW_BYTES_PER_D", 0) * d * int(feed.mask.sum())
    return total


def layer_groups(n_layers: int, per_layer: int, budget_gb: float | None) -> list[list[int]]:
    """Consecutive layers in groups whose accumulators fit ``budget_gb`` (None: one group of every layer)."""
    if budget_gb is None:
        return [list(range(n_layers))]
    per_group = int(budget_gb * 1e9 // max(per_layer, 1))
    if per_group < 1:
        raise ValueError(
            f"extraction.accumulator_budget_gb = {budget_gb} is below one layer's accumulators "
            f"({per_layer:,} bytes); raise it"
        )
    return [list(range(lo, min(lo + per_group, n_layers))) for lo in range(0, n_layers, per_group)]


def shard_blocks(
    runner: HiddenStates,
    seqs: Sequences,
    batches: list[np.ndarray],
    offset: int,
    token_range: tuple[int, int],
    union: np.ndarray,
) -> Iterator[tuple[list[torch.Tensor], np.ndarray]]:
    """(each stored layer's hidden states (n, d) on the model's device, token rows) of the selected tokens of a
    token range."""
    lengths = seqs.lengths()
    start, stop = token_range
    for rows in batches:
        n = int(lengths[rows].sum())
        keep = np.flatnonzero(union[offset : offset + n])
        keep = keep[(keep >= start - offset) & (keep < stop - offset)]
        if keep.size:
            hidden = runner.layer_states(seqs, rows)
            if keep.size < n:
                index = torch.as_tensor(keep, device=hidden[0].device)
                hidden = [states[index] for states in hidden]
            yield hidden, offset + keep
        offset += n


def on_device(values: torch.Tensor) -> torch.Tensor | np.ndarray:
    """A block as float64 (exact: the model computes in float32 or narrower) where the forward ran: a tensor on a
    GPU; on the CPU a numpy array (numpy converts and accumulates faster there than torch)."""
    host = on_host(values)
    return host.astype(np.float64) if isinstance(host, np.ndarray) else values.double()


def fused_shard(
    runner: HiddenStates,
    seqs: Sequences,
    feeds: Sequence[Feed],
    n_tokens: int,
    settings: dict,
    shard: str,
    out_dir: str | os.PathLike,
    budget_gb: float | None = None,
    store_key: str = "",
) -> None:
    """Run the model over shard ``k-of-n`` once per group of layers whose accumulators fit ``budget_gb``,
    and save every layer's accumulators with the slot they cover (``store_key``: the header's ``store_id``)."""
    lengths = seqs.lengths()
    _, batches = plan_batches(lengths, settings["batch_tokens"])
    token_range = shard_range(n_tokens, settings["chunk_tokens"], *parse_shard(shard))
    chosen, offset = batches_in_range(lengths, batches, *token_range)
    feed_set = LayerFeeds(feeds, n_tokens, f"forward pass of shard {shard}")
    n_layers, d = len(runner.names), runner.loaded.d_model
    per_layer = layer_bytes(feed_set, d, n_layers)
    groups = layer_groups(n_layers, per_layer, budget_gb)
    selected = int(feed_set.union[token_range[0] : token_range[1]].sum())
    log.info(
        "shard %s: tokens %d..%d of %d (%d selected), %d batches, %d layers in %d pass(es), "
        "accumulators %d bytes per layer, %s",
        shard,
        *token_range,
        n_tokens,
        selected,
        len(chosen),
        n_layers,
        len(groups),
        per_layer,
        sorted(f.name for f in feed_set.feeds),
    )
    progress = Progress(selected * len(groups), "tokens")
    with atomic.atomic_output(out_dir) as tmp, background_saves() as save:
        tmp.mkdir()
        for group in groups:
            accumulators: dict[int, dict[str, Accumulator]] = {
                layer: feed_set.start(layer, d, feed_set.later(layer, n_layers)) for layer in group
            }
            with reuse_heap():  # a batch's temporaries and activations reuse the previous batch's memory
                for hidden, rows in shard_blocks(runner, seqs, chosen, offset, token_range, feed_set.union):
                    converted: dict[int, np.ndarray | torch.Tensor] = {}  # each layer's block converted once
                    for layer in group:
                        span = range(layer, layer + 1 + feed_set.later(layer, n_layers))
                        for m in span:
                            if m not in converted:
                                converted[m] = on_device(hidden[m])
                        values, *following = (converted[m] for m in span)
                        feed_set.feed(accumulators[layer], layer, values, rows, "", following)
                        del converted[layer]
                    progress.update(len(rows))
            for layer in group:
                save(part_path(tmp, layer), accumulators.pop(layer), Slot(layer, shard, *token_range, store_key))
    progress.update(0, force=True)


def run_fused_shard(
    spec: dict,
    model_name: str,
    documents: str | os.PathLike,
    sentences: str | os.PathLike,
    tokens: str | os.PathLike,
    header: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard: str,
    feeds_of: Callable[[pl.DataFrame], list[Feed]],
    budget_gb: float | None,
    threads: int,
) -> None:
    """The fused extract rule: shard ``k-of-n`` of a pair from the forward pass into the feeds ``feeds_of(token
    table)`` of every planned analysis."""
    limit_heap_retention()
    loaded, seqs = load_job(spec, documents, sentences, threads)
    table = store.read_tokens(tokens, store.open_hidden(header))
    order, _ = plan_batches(seqs.lengths(), spec["settings"]["batch_tokens"])
    if not np.array_equal(ordered_ids(seqs, order), table["token_id"].to_numpy()):
        raise ValueError(f"{tokens} is not the token table of these sequences; rerun the fused tokens job")
    feeds = feeds_of(table)
    runner = fused_runner(loaded, spec, model_name)
    store_key = store.store_id(store.open_hidden(header).attrs)  # what every partial of this shard is from
    fused_shard(runner, seqs, feeds, table.height, spec["settings"], shard, out_dir, budget_gb, store_key)
