"""Extraction stage: run a model over token sequences and store every layer's hidden states.

Writes go to a hidden ``.states.zarr.partial`` beside the output, prepared once with every token's
place. Shard ``k-of-K`` (``extraction.shards``) writes its chunk-aligned token region one block at a
time and records its progress in ``io.regions``; a killed shard resumes after its last flushed block.
Only a store whose every region is complete is renamed to ``states.zarr``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
import polars as pl
import torch
import zarr

from layergeom import __version__
from layergeom.checks import check_inputs
from layergeom.config import ConfigError, entry_hash
from layergeom.fingerprint import differences, fingerprint
from layergeom.io import atomic, regions, store
from layergeom.joblog import Progress
from layergeom.memory import limit_heap_retention
from layergeom.models import LoadedModel, find_final_norm, load_model_entry
from layergeom.sequences import (
    Sequences,
    batches_in_range,
    context_sequences,
    plan_batches,
    sentence_sequences,
    token_table,
)
from layergeom.sources import resolve_source
from layergeom.stream.shards import shard_ids

log = logging.getLogger(__name__)


class NonFiniteError(ValueError):
    """Hidden states that the storage dtype cannot hold."""


def build_sequences(
    loaded: LoadedModel, corpus_entry: dict, documents: pl.DataFrame, sentences: pl.DataFrame, max_length: int
) -> Sequences:
    """Sequences for the corpus entry's mode (``sentences`` or ``contexts``)."""
    spec = corpus_entry["sequences"]
    if spec["mode"] == "sentences":
        return sentence_sequences(loaded.tokenizer, sentences, max_length)
    if spec["length"] > max_length:
        raise ValueError(f"sequences.length={spec['length']} exceeds extraction.max_length={max_length}")
    return context_sequences(
        loaded.tokenizer, documents, spec["length"], spec["count"], spec["per_document"], spec["seed"]
    )


class HiddenStates:
    """Runs batches through a model and returns the hidden states of the real (unpadded) tokens."""

    def __init__(self, loaded: LoadedModel, residual_before_final_norm: bool = False, layers: list[int] | None = None):
        self.loaded = loaded
        self.layers = list(range(loaded.n_layers + 1)) if layers is None else list(layers)
        self.norm = find_final_norm(loaded.model) if loaded.kind == "decoder" else None
        if residual_before_final_norm and self.norm is None:
            raise ValueError("residual_before_final_norm is set but the model has no final norm module")
        self.residual_before_final_norm = residual_before_final_norm
        self.last_after_final_norm: bool | None = None if self.norm is not None else False
        names = ["embeddings"] + [f"block_{i}" for i in range(1, loaded.n_layers + 1)]
        self.names = [names[i] for i in self.layers]
        self._seen: dict[str, torch.Tensor] = {}
        if self.norm is not None:
            self.norm.register_forward_pre_hook(lambda _m, args: self._seen.__setitem__("input", args[0]))
            self.norm.register_forward_hook(lambda _m, _a, out: self._seen.__setitem__("output", out))

    def forward(self, seqs: Sequences, rows: np.ndarray):
        """The model's output for sequences ``rows``, right-padded, and the padding mask."""
        lengths = torch.as_tensor(seqs.lengths()[rows])
        width = int(lengths.max())
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(seqs.ids[r])] = torch.as_tensor(seqs.ids[r])
        mask = (torch.arange(width)[None, :] < lengths[:, None]).to(self.loaded.device)
        kwargs = {"use_cache": False} if self.loaded.kind == "decoder" else {}
        with torch.inference_mode():
            out = self.loaded.model(
                input_ids=ids.to(self.loaded.device), attention_mask=mask.long(), output_hidden_states=True, **kwargs
            )
        return out, mask

    def _hidden(self, seqs: Sequences, rows: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The stored layers' hidden states (sequences, width, d) of sequences ``rows`` and the padding mask."""
        out, mask = self.forward(seqs, rows)
        hidden = list(out.hidden_states)
        if len(hidden) != self.loaded.n_layers + 1:
            raise RuntimeError(f"model returned {len(hidden)} hidden states, expected {self.loaded.n_layers + 1}")
        if self.norm is not None:
            if self.last_after_final_norm is None:
                self.last_after_final_norm = bool(torch.equal(hidden[-1], self._seen["output"]))
            if self.residual_before_final_norm and self.last_after_final_norm:
                hidden[-1] = self._seen["input"]
        return [hidden[layer] for layer in self.layers], mask

    def __call__(self, seqs: Sequences, rows: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Hidden states (stored layers, tokens, d) of sequences ``rows`` as ``dtype`` on the host, tokens in
        row-major order."""
        hidden, mask = self._hidden(seqs, rows)
        with torch.inference_mode():
            kept = torch.empty((len(hidden), int(mask.sum()), hidden[0].shape[-1]), dtype=dtype, device=mask.device)
            for position, states in enumerate(hidden):
                kept[position] = states[mask]
            return kept.cpu()

    def layer_states(self, seqs: Sequences, rows: np.ndarray) -> list[torch.Tensor]:
        """Each stored layer's hidden states (tokens, d) of sequences ``rows``, left on the model's device in its
        dtype (fused extraction): views of the model's outputs when no sequence is padded."""
        hidden, mask = self._hidden(seqs, rows)
        with torch.inference_mode():
            if bool(mask.all()):
                return [states.reshape(-1, states.shape[-1]) for states in hidden]
            return [states[mask] for states in hidden]


def check_finite(values: torch.Tensor, names: list[str], offset: int) -> None:
    """Raise NonFiniteError naming the first layer with inf or nan (overflow of the storage dtype)."""
    finite = torch.isfinite(values).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = names[int(torch.argmin(finite.int()))]
        raise NonFiniteError(
            f"layer '{bad}' has inf or nan in {values.dtype} near tokens {offset}..{offset + values.shape[1]}: "
            "the values overflow the storage dtype; set extraction.dtype: float32"
        )


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


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the stored numbers."""
    return {"layergeom": __version__, **{name: version(name) for name in ("torch", "transformers", "zarr", "numpy")}}


def layers_to_store(settings: dict, n_blocks: int, model: str) -> list[int]:
    """Model layer indices to store (0 = embeddings, i = block i): ``extraction.layers``, or all when null."""
    layers = settings.get("layers")
    if layers is None:
        return list(range(n_blocks + 1))
    beyond = [i for i in layers if i > n_blocks]
    if beyond:
        raise ConfigError(
            f"extraction.layers of model '{model}': {beyond} beyond its {n_blocks} blocks (indices 0..{n_blocks})"
        )
    return list(layers)


def model_attrs(loaded: LoadedModel, runner: HiddenStates, settings: dict, n_tokens: int) -> dict:
    """Store attributes that describe the model's stored layers and the extraction."""
    return {
        "layer_names": runner.names,
        "layers": runner.layers,
        "n_layers": loaded.n_layers,
        "d_model": loaded.d_model,
        "kind": loaded.kind,
        "dtype": settings["dtype"],
        "n_tokens": n_tokens,
        "versions": library_versions(),
    }


def changed_inputs(array: zarr.Array, attrs: dict, shape: tuple[int, int, int]) -> list[str]:
    """What differs between a partial store and this run's inputs: config hash, fingerprint parts, shape."""
    return differences(dict(array.attrs), attrs) + ([] if tuple(array.shape) == shape else ["shape"])


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


def iter_batches(
    runner: HiddenStates,
    seqs: Sequences,
    batches: list[np.ndarray],
    start: int,
    stop: int,
    dtype: torch.dtype = torch.float32,
) -> Iterator[np.ndarray]:
    """Hidden states of stored tokens [start, stop) in order as ``dtype``, each computed in its batch of the plan."""
    lengths = seqs.lengths()
    chosen, done = batches_in_range(lengths, batches, start, stop)
    for rows in chosen:
        values = runner(seqs, rows, dtype)[:, max(start - done, 0) : stop - done]
        check_finite(values, runner.names, max(done, start))
        done += int(lengths[rows].sum())
        yield values.numpy()


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
        atomic.write_parquet(self.table, atomic.temp_sibling(tokens_path, "partial"))
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


def load_extraction(spec: dict, model_name: str, corpus_name: str, documents, sentences, threads: int) -> Extraction:
    """Load the model of ``spec`` and build its sequences of the corpus."""
    loaded, seqs = load_job(spec, documents, sentences, threads)
    check_inputs(loaded, seqs, model_name, corpus_name, spec)
    attrs = job_attrs(spec, model_name, corpus_name, seqs)
    return Extraction(loaded, seqs, spec["settings"], attrs, spec["model"]["residual_before_final_norm"])


def load_job(
    spec: dict, documents: str | os.PathLike, sentences: str | os.PathLike, threads: int
) -> tuple[LoadedModel, Sequences]:
    """The model of an extraction job's ``spec`` and its sequences of the corpus."""
    torch.set_num_threads(max(1, threads))
    limit_heap_retention()
    loaded = load_model_entry(spec["model"], spec["settings"])
    seqs = build_sequences(
        loaded, spec["corpus"], pl.read_parquet(documents), pl.read_parquet(sentences), spec["settings"]["max_length"]
    )
    return loaded, seqs


def job_attrs(spec: dict, model_name: str, corpus_name: str, seqs: Sequences) -> dict:
    """Store attributes of an extraction job: model, corpus, sequence mode, the config hash and the fingerprint."""
    model, corpus = spec["model"], spec["corpus"]
    mode = corpus["sequences"]["mode"]
    return {
        "model": model_name,
        "model_source": model["source"],
        "revision": model.get("revision"),
        "init": model["init"],
        "residual_before_final_norm": model["residual_before_final_norm"],
        "corpus": corpus_name,
        "mode": mode,
        "sequence_length": corpus["sequences"]["length"] if mode == "contexts" else None,
        "config_hash": entry_hash(store_spec(spec)),
        "fingerprint": fingerprint(
            resolve_source(model["source"], model.get("gguf_file")), model.get("revision"), seqs
        ),
    }


def store_spec(spec: dict) -> dict:
    """What the stored bytes depend on: the spec without the shard count (in the settings and the model's override)."""
    model = {key: value for key, value in spec["model"].items() if key != "extraction"}
    if _without_shards(spec["model"].get("extraction") or {}):  # an override of only shards is no override
        model["extraction"] = _without_shards(spec["model"]["extraction"])
    return {**spec, "model": model, "settings": _without_shards(spec["settings"])}


def _without_shards(settings: dict) -> dict:
    return {key: value for key, value in settings.items() if key != "shards"}


def run_extract_job(
    spec: dict,
    model_name: str,
    corpus_name: str,
    documents: str | os.PathLike,
    sentences: str | os.PathLike,
    states_path: str | os.PathLike,
    tokens_path: str | os.PathLike,
    threads: int,
) -> None:
    """The extract rule: the whole extraction with one shard, else the check and rename after the K shard jobs."""
    shards = spec["settings"].get("shards", 1)
    if shards > 1:
        finalize_store(states_path, tokens_path, shard_ids(shards))
        return
    extract_whole(
        load_extraction(spec, model_name, corpus_name, documents, sentences, threads), states_path, tokens_path
    )


def run_prepare_job(
    spec: dict, model_name: str, corpus_name: str, documents, sentences, states_path, tokens_path, plan
) -> None:
    """The extract_plan rule: the partial store and token table that the shard jobs fill, and a plan file."""
    job = load_extraction(spec, model_name, corpus_name, documents, sentences, 1)
    job.prepare(states_path, tokens_path)
    record = {
        "config_hash": job.attrs["config_hash"],
        "n_tokens": job.table.height,
        "shards": shard_ids(spec["settings"]["shards"]),
    }
    regions.write_progress(Path(plan), record)


def run_shard_job(
    spec: dict, model_name: str, corpus_name: str, documents, sentences, states_path, shard: str, done, threads: int
) -> None:
    """The extract_shard rule: write shard ``k-of-K``'s region of the prepared store, then its ``done`` file."""
    job = load_extraction(spec, model_name, corpus_name, documents, sentences, threads)
    job.write_region(states_path, shard)
    regions.write_progress(Path(done), json.loads(regions.progress_path(states_path, shard).read_text()))
