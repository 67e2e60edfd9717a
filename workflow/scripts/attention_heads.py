"""Per-head self-attention statistics of one model on one corpus's stored sequences (rule attention)."""

import torch

from layergeom.analyses.attention.heads import has_rotary, head_stats, heads_table, sequences_from_tokens
from layergeom.io.atomic import write_parquet
from layergeom.joblog import job_logging
from layergeom.models import load_model_entry
from layergeom.stream.selection import token_mask
from layergeom.io.store import read_tokens

with job_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    model, settings, sel = sm.params.model, sm.params.settings, sm.params.selection
    torch.set_num_threads(max(1, sm.threads))
    loaded = load_model_entry(model, settings)
    tokens = read_tokens(sm.input.tokens)
    mask = token_mask(tokens, sel["include_special"], sel["exclude_first_position"])
    seqs, keep = sequences_from_tokens(tokens, mask)
    sites = head_stats(loaded, seqs, keep, settings["batch_tokens"])
    step = (model.get("checkpoint") or {}).get("step")
    table = heads_table(sites, sm.wildcards.model, step, has_rotary(loaded.model))
    log.info("%d layers x %d heads over %d selected tokens", len(sites), sites[0].n_heads, sites[0].n)
    write_parquet(table, sm.output.table)
