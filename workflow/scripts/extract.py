"""Extract every layer's hidden states of one model on one corpus (rule extract)."""

import polars as pl
import torch

from layergeom.config import entry_hash
from layergeom.extract import build_sequences, extract
from layergeom.joblog import job_logging
from layergeom.models import load_model_entry

with job_logging(snakemake.log[0]):
    spec = snakemake.params.spec
    model, corpus, settings = spec["model"], spec["corpus"], spec["settings"]
    torch.set_num_threads(max(1, snakemake.threads))
    loaded = load_model_entry(model, settings)
    seqs = build_sequences(
        loaded, corpus, pl.read_parquet(snakemake.input.documents), pl.read_parquet(snakemake.input.sentences), settings["max_length"]
    )
    attrs = {
        "model": snakemake.wildcards.model,
        "model_source": model["source"],
        "revision": model.get("revision"),
        "init": model["init"],
        "residual_before_final_norm": model["residual_before_final_norm"],
        "corpus": snakemake.wildcards.corpus,
        "mode": corpus["sequences"]["mode"],
        "sequence_length": corpus["sequences"]["length"] if corpus["sequences"]["mode"] == "contexts" else None,
        "config_hash": entry_hash(spec),
    }
    extract(loaded, seqs, snakemake.output.states, snakemake.output.tokens, settings, attrs, model["residual_before_final_norm"])
