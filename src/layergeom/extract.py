"""Extraction stage: run a model over token sequences and store every layer's hidden states.

Writes go to a hidden ``.states.zarr.partial`` beside the output, flushed one chunk-aligned block
of tokens at a time; a killed run resumes after the last flushed block, and only a finished store
is renamed to ``states.zarr``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
import polars as pl
import torch
import zarr

from layergeom import __version__
from layergeom.checks import check_inputs
from layergeom.config import entry_hash
from layergeom.fingerprint import differences, fingerprint
from layergeom.io import atomic, store
from layergeom.joblog import Progress
from layergeom.memory import limit_heap_retention
from layergeom.models import LoadedModel, find_final_norm, load_model_entry
from layergeom.sequences import Sequences, context_sequences, plan_batches, sentence_sequences, token_table
from layergeom.sources import resolve_source

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

    def __init__(self, loaded: LoadedModel, residual_before_final_norm: bool = False):
        self.loaded = loaded
        self.norm = find_final_norm(loaded.model) if loaded.kind == "decoder" else None
        if residual_before_final_norm and self.norm is None:
            raise ValueError("residual_before_final_norm is set but the model has no final norm module")
        self.residual_before_final_norm = residual_before_final_norm
        self.last_after_final_norm: bool | None = None if self.norm is not None else False
        self.names = ["embeddings"] + [f"block_{i}" for i in range(1, loaded.n_layers + 1)]
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

    def __call__(self, seqs: Sequences, rows: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Hidden states (layers, tokens, d) of sequences ``rows`` as ``dtype``, tokens in row-major order."""
        out, mask = self.forward(seqs, rows)
        with torch.inference_mode():
            hidden = list(out.hidden_states)
            if self.norm is not None:
                if self.last_after_final_norm is None:
                    self.last_after_final_norm = bool(torch.equal(hidden[-1], self._seen["output"]))
                if self.residual_before_final_norm and self.last_after_final_norm:
                    hidden[-1] = self._seen["input"]
            kept = torch.empty((len(hidden), int(mask.sum()), hidden[0].shape[-1]), dtype=dtype, device=mask.device)
            for layer, h in enumerate(hidden):
                kept[layer] = h[mask]
            return kept.cpu()


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
    """Appends token vectors (layers, n, d) to a store in chunk-aligned blocks."""

    def __init__(self, array: zarr.Array, start: int):
        self.array, self.offset = array, start
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
        self.array.attrs["completed_tokens"] = self.offset
        rest = data[:, n_write:]
        self.pending, self.n_pending = ([rest], rest.shape[1]) if rest.shape[1] else ([], 0)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the stored numbers."""
    return {"layergeom": __version__, **{name: version(name) for name in ("torch", "transformers", "zarr", "numpy")}}


def _resume_point(partial: Path, attrs: dict, shape: tuple[int, int, int]) -> int:
    """Tokens already written by an earlier run with the same inputs, or 0."""
    if not partial.exists():
        return 0
    try:
        array = store.open_hidden(partial, mode="r")
        changed = differences(dict(array.attrs), attrs) + ([] if tuple(array.shape) == shape else ["shape"])
        if changed:
            log.warning("starting over: %s was computed from other inputs (%s)", partial, ", ".join(changed))
        done = 0 if changed else int(array.attrs.get("completed_tokens", 0))
    except Exception:  # an unreadable partial store is simply started again
        done = 0
    if done == 0:
        atomic.remove(partial)
    return done


def iter_batches(
    runner: HiddenStates,
    seqs: Sequences,
    batches: list[np.ndarray],
    skip_tokens: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Iterator[np.ndarray]:
    """Hidden states of each batch in order as ``dtype``, skipping the first ``skip_tokens`` stored tokens."""
    lengths = seqs.lengths()
    done = 0
    for rows in batches:
        n = int(lengths[rows].sum())
        if done + n <= skip_tokens:
            done += n
            continue
        values = runner(seqs, rows, dtype)
        if done < skip_tokens:
            values = values[:, skip_tokens - done :]
        check_finite(values, runner.names, max(done, skip_tokens))
        done += n
        yield values.numpy()


def extract(
    loaded: LoadedModel,
    seqs: Sequences,
    states_path: str | os.PathLike,
    tokens_path: str | os.PathLike,
    settings: dict,
    attrs: dict,
    residual_before_final_norm: bool = False,
) -> None:
    """Store all layers' hidden states of ``seqs`` at states_path and the token table at tokens_path."""
    limit_heap_retention()
    order, batches = plan_batches(seqs.lengths(), settings["batch_tokens"])
    table = token_table(seqs, order, loaded.tokenizer)
    runner = HiddenStates(loaded, residual_before_final_norm)
    n_layers, d, names = loaded.n_layers + 1, loaded.d_model, runner.names
    attrs = {
        **attrs,
        "layer_names": names,
        "n_layers": loaded.n_layers,
        "d_model": d,
        "kind": loaded.kind,
        "dtype": settings["dtype"],
        "n_tokens": table.height,
        "versions": library_versions(),
    }
    partial = atomic.temp_sibling(states_path, "partial")
    start = _resume_point(partial, attrs, (n_layers, table.height, d))
    if start:
        log.info("resuming after %d of %d tokens already stored in %s", start, table.height, partial)
        array = store.open_hidden(partial, mode="r+")
    else:
        array = store.create_store(
            partial,
            n_layers,
            table.height,
            d,
            settings["dtype"],
            settings["chunk_tokens"],
            settings.get("shard_tokens"),
            {**attrs, "complete": False},
            settings.get("compression", "none"),
        )
    log.info(
        "%d sequences, %d tokens, %d batches; layers=%d d=%d dtype=%s",
        len(seqs.ids),
        table.height,
        len(batches),
        n_layers,
        d,
        settings["dtype"],
    )
    writer = BlockWriter(array, start)
    progress = Progress(table.height - start)
    for values in iter_batches(runner, seqs, batches, skip_tokens=start, dtype=getattr(torch, settings["dtype"])):
        if values.shape[0] != n_layers:
            raise RuntimeError(f"model returned {values.shape[0]} hidden states, expected {n_layers}")
        writer.append(values)
        progress.update(values.shape[1])
    writer.finish()
    progress.update(0, force=True)
    final_flag = runner.last_after_final_norm and not residual_before_final_norm
    meta = {"complete": True, "last_layer_after_final_norm": bool(final_flag)}
    array.attrs.update(meta)
    zarr.open_group(str(partial), mode="r+").attrs.update({**attrs, **meta})
    atomic.write_parquet(table, tokens_path)
    atomic.remove(states_path)
    os.replace(partial, states_path)
    log.info("wrote %s (last layer after final norm: %s)", states_path, final_flag)


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
    """The extract rule: load the model of ``spec``, build its sequences of the corpus and store every layer."""
    model, corpus, settings = spec["model"], spec["corpus"], spec["settings"]
    torch.set_num_threads(max(1, threads))
    loaded = load_model_entry(model, settings)
    seqs = build_sequences(
        loaded, corpus, pl.read_parquet(documents), pl.read_parquet(sentences), settings["max_length"]
    )
    check_inputs(loaded, seqs, model_name, corpus_name, spec)
    mode = corpus["sequences"]["mode"]
    attrs = {
        "model": model_name,
        "model_source": model["source"],
        "revision": model.get("revision"),
        "init": model["init"],
        "residual_before_final_norm": model["residual_before_final_norm"],
        "corpus": corpus_name,
        "mode": mode,
        "sequence_length": corpus["sequences"]["length"] if mode == "contexts" else None,
        "config_hash": entry_hash(spec),
        "fingerprint": fingerprint(
            resolve_source(model["source"], model.get("gguf_file")), model.get("revision"), seqs
        ),
    }
    extract(loaded, seqs, states_path, tokens_path, settings, attrs, model["residual_before_final_norm"])
