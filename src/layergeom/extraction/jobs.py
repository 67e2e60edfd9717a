"""The extraction jobs (rules extract, extract_plan, extract_shard): one public entry per job."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import torch

from layergeom.extraction.checks import check_inputs
from layergeom.extraction.memory import limit_heap_retention
from layergeom.extraction.models import LoadedModel, load_model_entry
from layergeom.extraction.provenance import (
    job_attrs,
)
from layergeom.extraction.sequences import (
    Sequences,
    build_sequences,
)
from layergeom.extraction.writer import Extraction, extract_whole, finalize_store
from layergeom.io import regions
from layergeom.io.shards import shard_ids


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
