"""Self-attention statistics per layer and head, streamed over a corpus with forward hooks.

Queries and keys are taken from the attention projections (GPT-2 ``c_attn``, Llama-like ``q_proj`` and
``k_proj``, BERT ``query`` and ``key``): in rotary models that is before the rotation. Attention weights
are the model's own (eager attention), read from the attention module's output. Per head, float64 sums
over the selected tokens give ||mean q||, ||mean k||, their cosine, the mean row entropy and the mean
largest weight; nothing per token is kept.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import polars as pl
import torch

from layergeom.extraction.forward import HiddenStates
from layergeom.extraction.hooks import STYLES, Site, entropy_and_max, find_sites, has_rotary
from layergeom.extraction.models import LoadedModel, load_model_entry
from layergeom.extraction.sequences import Sequences, plan_batches
from layergeom.io.atomic import write_parquet
from layergeom.io.store import read_tokens, relative_depth
from layergeom.joblog import Progress
from layergeom.stream.selection import token_mask

log = logging.getLogger(__name__)

HEADS_SCHEMA = {
    "model": pl.Utf8,
    "step": pl.Int64,
    "layer": pl.Int64,
    "relative_depth": pl.Float64,
    "head": pl.Int64,
    "kv_head": pl.Int64,
    "n_tokens": pl.Int64,
    "mean_q_norm": pl.Float64,
    "mean_k_norm": pl.Float64,
    "qk_cos": pl.Float64,
    "mean_entropy": pl.Float64,
    "uniform_entropy": pl.Float64,
    "mean_max_weight": pl.Float64,
    "qk_rotation": pl.Utf8,
}


class HeadStats:
    """Forward hooks that add each batch's per-head sums to every site."""

    def __init__(self, model: torch.nn.Module, n_heads: int):
        self.sites = find_sites(model, n_heads)
        self.select: torch.Tensor | None = None  # (B, T) bool, tokens that enter the statistics
        self.log_keys: torch.Tensor | None = None  # (B, T) float64, log of each row's number of keys
        self.handles = []
        for site in self.sites:
            if site.style == "c_attn":
                self._hook(site.module.c_attn, lambda out, s=site: self._add_qkv(s, out))
            else:
                q_name, k_name = STYLES[site.style]
                self._hook(getattr(site.module, q_name), lambda out, s=site: self._add(s, "q_sum", out))
                self._hook(getattr(site.module, k_name), lambda out, s=site: self._add(s, "k_sum", out))
            self._hook(site.module, lambda out, s=site: self._add_weights(s, out))

    def _hook(self, module: torch.nn.Module, fn) -> None:
        self.handles.append(module.register_forward_hook(lambda _m, _a, out: fn(out)))

    def remove(self) -> None:
        """Detach every hook."""
        for handle in self.handles:
            handle.remove()

    def _sum(self, values: torch.Tensor) -> np.ndarray:
        """float64 sum over the selected tokens of (B, T, ...) values."""
        return values[self.select].double().sum(0).cpu().numpy()

    def _add(self, site: Site, field: str, out: torch.Tensor) -> None:
        total = self._sum(out).reshape(-1, site.head_dim)
        current = getattr(site, field)
        setattr(site, field, total if current is None else current + total)

    def _add_qkv(self, site: Site, out: torch.Tensor) -> None:
        q, k, _ = out.split(out.shape[-1] // 3, dim=-1)
        self._add(site, "q_sum", q)
        self._add(site, "k_sum", k)

    def _add_weights(self, site: Site, out) -> None:
        weights = out[1] if isinstance(out, tuple) and len(out) > 1 else None
        if weights is None:
            raise RuntimeError("the attention module returned no weights: load the model with eager attention")
        entropy = torch.empty(weights.shape[:3], dtype=torch.float64, device=weights.device)
        largest = torch.empty_like(entropy)
        for head in range(weights.shape[1]):  # one head at a time bounds the float64 copy
            entropy[:, head], largest[:, head] = entropy_and_max(weights[:, head])
        ent = self._sum(entropy.transpose(1, 2))
        top = self._sum(largest.transpose(1, 2))
        site.entropy_sum = ent if site.entropy_sum is None else site.entropy_sum + ent
        site.max_sum = top if site.max_sum is None else site.max_sum + top
        site.n += int(self.select.sum())
        site.uniform_sum += float(self.log_keys[self.select].sum())


def sequences_from_tokens(tokens: pl.DataFrame, keep: np.ndarray) -> tuple[Sequences, list[np.ndarray]]:
    """The stored sequences rebuilt from the token table (seq_id order), and each token's selection flag."""
    order = np.lexsort((tokens["position"].to_numpy(), tokens["seq_id"].to_numpy()))
    seq = tokens["seq_id"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]]) if len(seq) else np.zeros(0, np.int64)
    split = lambda values: np.split(np.asarray(values)[order], starts[1:])  # noqa: E731
    first = order[starts]
    seqs = Sequences(
        seq_id=seq[starts],
        doc_id=tokens["doc_id"].to_numpy()[first],
        topic=[tokens["topic"][int(i)] for i in first],
        ids=split(tokens["token_id"].to_numpy().astype(np.int64)),
        special=split(tokens["is_special"].to_numpy()),
    )
    return seqs, split(keep)


def _padded(rows: np.ndarray, values: list[np.ndarray], width: int, dtype) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=dtype)
    for i, r in enumerate(rows):  # one copy per sequence
        out[i, : len(values[r])] = values[r]
    return out


def head_stats(loaded: LoadedModel, seqs: Sequences, keep: list[np.ndarray], batch_tokens: int) -> list[Site]:
    """Run every sequence through the model with hooks; the sites hold the per-head sums."""
    config = loaded.model.config
    n_heads = int(config.num_attention_heads)
    loaded.model.set_attn_implementation("eager")
    stats = HeadStats(loaded.model, n_heads)
    runner = HiddenStates(loaded)
    lengths = seqs.lengths()
    n_keys = [np.arange(1, n + 1) if loaded.kind == "decoder" else np.full(n, n) for n in lengths]
    _, batches = plan_batches(lengths, batch_tokens)
    progress = Progress(int(lengths.sum()), "tokens")
    try:
        for rows in batches:
            width = int(lengths[rows].max())
            stats.select = torch.as_tensor(_padded(rows, keep, width, bool), device=loaded.device)
            log_keys = np.log(np.maximum(_padded(rows, n_keys, width, np.float64), 1))
            stats.log_keys = torch.as_tensor(log_keys, device=loaded.device)
            runner.forward(seqs, rows)
            progress.update(int(lengths[rows].sum()))
        progress.update(0, force=True)
    finally:
        stats.remove()
    return stats.sites


def heads_table(sites: list[Site], model: str, step: int | None, rotary: bool, blocks: int) -> pl.DataFrame:
    """One row per (layer, head): norms of the mean query and key, their cosine, entropy and largest weight."""
    rows = []
    for site in sites:
        n = max(site.n, 1)
        mq, mk = site.q_sum / n, site.k_sum / n
        group = site.n_heads // mk.shape[0]
        for head in range(site.n_heads):
            q, k = mq[head], mk[head // group]
            qn, kn = float(np.linalg.norm(q)), float(np.linalg.norm(k))
            rows.append(
                {
                    "model": model,
                    "step": step,
                    "layer": site.layer,
                    "relative_depth": relative_depth(site.layer, blocks),
                    "head": head,
                    "kv_head": head // group,
                    "n_tokens": site.n,
                    "mean_q_norm": qn,
                    "mean_k_norm": kn,
                    "qk_cos": float(q @ k) / (qn * kn) if qn * kn > 0 else np.nan,
                    "mean_entropy": site.entropy_sum[head] / n,
                    "uniform_entropy": site.uniform_sum / n,
                    "mean_max_weight": site.max_sum[head] / n,
                    "qk_rotation": "before rotation" if rotary and site.style != "c_attn" else "none",
                }
            )
    return pl.DataFrame(rows, schema=HEADS_SCHEMA)


def write_heads(
    model: dict,
    settings: dict,
    selection: dict,
    model_name: str,
    tokens_path: str | os.PathLike,
    out: str | os.PathLike,
    threads: int,
) -> pl.DataFrame:
    """The attention rule: per-head statistics of one model over the selected tokens of its stored sequences."""
    torch.set_num_threads(max(1, threads))
    loaded = load_model_entry(model, settings)
    tokens = read_tokens(tokens_path)
    seqs, keep = sequences_from_tokens(tokens, token_mask(tokens, **selection))
    layers = settings.get("layers")  # extraction.layers: only the blocks stored (block i is layer i)
    sites = [
        site for site in head_stats(loaded, seqs, keep, settings["batch_tokens"]) if not layers or site.layer in layers
    ]
    step = (model.get("checkpoint") or {}).get("step")
    table = heads_table(sites, model_name, step, has_rotary(loaded.model), loaded.n_layers)
    log.info("%d layers x %d heads over %d selected tokens", len(sites), sites[0].n_heads, sites[0].n)
    write_parquet(table, out)
    return table
