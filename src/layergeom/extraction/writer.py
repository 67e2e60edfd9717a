"""The store writer: the partial store, its token regions (resumable) and the final check and rename."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import zarr

from layergeom.extraction.forward import HiddenStates, iter_batches
from layergeom.extraction.memory import limit_heap_retention
from layergeom.extraction.models import LoadedModel
from layergeom.extraction.provenance import (
    changed_inputs,
    layers_to_store,
    model_attrs,
)
from layergeom.extraction.sequences import (
    Sequences,
    plan_batches,
    token_table,
)
from layergeom.io import atomic, regions, store
from layergeom.joblog import Progress

log = logging.getLogger("layergeom.extract")


class BlockWriter:
    """Writes token vectors (layers, n, d) to a store from ``start`` on, in chunk-aligned blocks."""

    def __init__(self, array: zarr.Array, start: int, flushed: Callable[[int], None]):
        self.array, self.offset, self.flushed = array, start, flushed
        self.block = store.write_block_size(array)
        self.pending: list[np.ndarray] = []
        self.n_pending = 0

    def append(self, values: np.ndarray) -> None:
        """Buffer values; write every full block."""
        self.pending.append(values)
        self.n_pending += values.shape[1]
        if self.n_pending >= self.block:
            self._flush(final=False)

    def finish(self) -> None:
        """Write what is left."""
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        data = (
            np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else self.pending[0] if self.pending else None
        )
        if data is None:
            return
        n_write = data.shape[1] if final else (data.shape[1] // self.block) * self.block
        self.array[:, self.offset : self.offset + n_write] = data[:, :n_write]
        self.offset += n_write
        self.flushed(self.offset)
        rest = data[:, n_write:]
        self.pending, self.n_pending = ([rest], rest.shape[1]) if rest.shape[1] else ([], 0)


def _resume_point(partial: Path, attrs: dict, shape: tuple[int, int, int]) -> bool:
    """Whether ``partial`` is a store of an earlier run with the same inputs (its regions resume); else remove it."""
    if not partial.exists():
        return False
    try:
        array = store.open_hidden(partial, mode="r")
        changed = changed_inputs(array, attrs, shape)
        if changed:
            log.warning("starting over: %s was computed from other inputs (%s)", partial, ", ".join(changed))
        same = not changed
    except Exception:  # an unreadable partial store is simply started again
        same = False
    if not same:
        atomic.remove(partial)
    return same


class Extraction:
    """One model on one corpus: the batch plan, the token table and the store's attributes."""

    def __init__(self, loaded: LoadedModel, seqs: Sequences, settings: dict, attrs: dict, residual: bool = False):
        self.loaded, self.seqs, self.settings, self.residual = loaded, seqs, settings, residual
        order, self.batches = plan_batches(seqs.lengths(), settings["batch_tokens"])
        self.table = token_table(seqs, order, loaded.tokenizer)
        layers = layers_to_store(settings, loaded.n_layers, attrs.get("model", "?"))
        self.runner = HiddenStates(loaded, residual, layers)
        self.attrs = {**attrs, **model_attrs(loaded, self.runner, settings, self.table.height)}
        self.shape = (len(layers), self.table.height, loaded.d_model)

    def prepare(self, states_path: str | os.PathLike, tokens_path: str | os.PathLike) -> None:
        """Create the partial store (or keep an earlier run's, with its regions) and the partial token table."""
        partial = atomic.temp_sibling(states_path, "partial")
        if _resume_point(partial, self.attrs, self.shape):
            log.info("keeping %s and its written regions", partial)
        else:
            atomic.remove(regions.regions_dir(states_path))
            settings = self.settings
            with atomic.atomic_output(partial) as tmp:  # a kill while creating leaves no partial store to resume
                store.create_store(
                    tmp,
                    *self.shape,
                    settings["dtype"],
                    settings["chunk_tokens"],
                    settings.get("shard_tokens"),
                    {**self.attrs, "complete": False},
                    settings.get("compression", "none"),
                )
        store.write_tokens(self.table, atomic.temp_sibling(tokens_path, "partial"), self.attrs)
        log.info(
            "%d sequences, %d tokens, %d batches; layers=%s d=%d dtype=%s",
            len(self.seqs.ids),
            self.table.height,
            len(self.batches),
            self.attrs["layers"],
            self.loaded.d_model,
            self.settings["dtype"],
        )

    def write_region(self, states_path: str | os.PathLike, shard: str) -> None:
        """Compute and write shard ``k-of-K``'s token region of the partial store, resuming after a kill."""
        array = store.open_hidden(atomic.temp_sibling(states_path, "partial"), mode="r+")
        changed = changed_inputs(array, self.attrs, self.shape)
        if changed:
            raise RuntimeError(
                f"{atomic.temp_sibling(states_path, 'partial')}: prepared for other inputs ({', '.join(changed)})"
            )
        start, stop = regions.region(self.table.height, store.write_block_size(array), shard)
        path = regions.progress_path(states_path, shard)
        record = {"config_hash": self.attrs["config_hash"], "start": start, "stop": stop}
        done = regions.resume_offset(path, start, stop, self.attrs["config_hash"])
        if done == stop and path.exists():
            log.info("shard %s: tokens %d..%d already written", shard, start, stop)
            return
        log.info(
            "shard %s: tokens %d..%d of %d%s",
            shard,
            start,
            stop,
            self.table.height,
            f", resuming at {done}" * (done > start),
        )

        def flushed(offset: int) -> None:
            flag = self.runner.last_after_final_norm
            final = bool(flag and not self.residual) if flag is not None else None
            regions.write_progress(path, {**record, "completed_tokens": offset, "last_layer_after_final_norm": final})

        writer = BlockWriter(array, done, flushed)
        progress = Progress(stop - done)
        dtype = getattr(torch, self.settings["dtype"])
        for values in iter_batches(self.runner, self.seqs, self.batches, done, stop, dtype):
            writer.append(values)
            progress.update(values.shape[1])
        writer.finish()
        flushed(stop)
        progress.update(0, force=True)


def finalize_store(states_path: str | os.PathLike, tokens_path: str | os.PathLike, shards: list[str]) -> None:
    """Check every shard's region, mark the partial store complete and rename it and the token table into place."""
    partial = atomic.temp_sibling(states_path, "partial")
    array = store.open_hidden(partial, mode="r+")
    block = store.write_block_size(array)
    flags = regions.check_regions(states_path, shards, array.shape[1], block, array.attrs["config_hash"])
    known = {flag for flag in flags if flag is not None}
    if len(known) > 1:
        raise RuntimeError(f"{regions.regions_dir(states_path)}: shards disagree on last_layer_after_final_norm")
    meta = {"complete": True, "last_layer_after_final_norm": bool(known and known.pop())}
    array.attrs.update(meta)
    zarr.open_group(str(partial), mode="r+").attrs.update(meta)
    os.replace(atomic.temp_sibling(tokens_path, "partial"), tokens_path)
    atomic.remove(states_path)
    os.replace(partial, states_path)
    atomic.remove(regions.regions_dir(states_path))
    log.info(
        "wrote %s from %d shard(s) (last layer after final norm: %s)",
        states_path,
        len(shards),
        meta["last_layer_after_final_norm"],
    )


def extract(
    loaded: LoadedModel,
    seqs: Sequences,
    states_path: str | os.PathLike,
    tokens_path: str | os.PathLike,
    settings: dict,
    attrs: dict,
    residual_before_final_norm: bool = False,
) -> None:
    """Store the hidden states of ``seqs`` at states_path and the token table at tokens_path in one job."""
    limit_heap_retention()
    extract_whole(Extraction(loaded, seqs, settings, attrs, residual_before_final_norm), states_path, tokens_path)


def extract_whole(job: Extraction, states_path: str | os.PathLike, tokens_path: str | os.PathLike) -> None:
    """Prepare, write the one region ``0-of-1`` and finalize, in this process."""
    job.prepare(states_path, tokens_path)
    job.write_region(states_path, "0-of-1")
    finalize_store(states_path, tokens_path, ["0-of-1"])
