"""The untrained-block drift experiment [AS]: randomly initialised transformer blocks whose first attention
reads x_i + N b.

x_i are standard Gaussian vectors scaled to norm about 1 (variance 1/d per coordinate), b is one random
unit direction shared by every token, N runs over 0 and a log grid. The drift must reach the queries and keys:
BERT's post-norm block reads its input, so the input is x_i + N b; GPT-2's pre-norm block normalises its input
first, so N b is added to the output of its first norm. After each block: the mean pairwise cosine of the
outputs (anisotropy) and the mean entropy and largest weight of the attention rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from layergeom.extraction.hooks import entropy_and_max, find_sites
from layergeom.joblog import Progress

DRIFT_SCHEMA = {
    "block_type": pl.Utf8,
    "repeat": pl.Int64,
    "drift": pl.Float64,
    "block": pl.Int64,
    "input_mean_cos": pl.Float64,
    "mean_cos": pl.Float64,
    "mean_norm": pl.Float64,
    "mean_entropy": pl.Float64,
    "uniform_entropy": pl.Float64,
    "mean_max_weight": pl.Float64,
}


def drift_grid(low: float, high: float, points: int) -> np.ndarray:
    """0 followed by ``points`` log-spaced drift norms from ``low`` to ``high``."""
    if not 0 < low < high:
        raise ValueError(f"drift_min={low} must be positive and below drift_max={high}")
    return np.r_[0.0, np.geomspace(low, high, points)]


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine over pairs i != j of the rows of x: (||sum u_i||^2 - n) / (n (n - 1)), in float64."""
    x = np.asarray(x, dtype=np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(u)
    s = u.sum(0)
    return float((s @ s - n) / (n * (n - 1)))


def make_blocks(kind: str, d_model: int, n_head: int, n_blocks: int, seed: int) -> list[torch.nn.Module]:
    """``n_blocks`` freshly initialised blocks (the library's init): GPT-2 (pre-norm, causal) or BERT (post-norm)."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    torch.manual_seed(seed)
    if kind == "gpt2":
        config = GPT2Config(
            n_embd=d_model,
            n_head=n_head,
            n_layer=n_blocks,
            n_positions=8,
            vocab_size=8,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = GPT2Model(config)
    elif kind == "bert":
        config = BertConfig(
            hidden_size=d_model,
            num_attention_heads=n_head,
            num_hidden_layers=n_blocks,
            intermediate_size=4 * d_model,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            vocab_size=8,
            max_position_embeddings=8,
        )
        model = BertModel(config)
    else:
        raise ValueError(f"unknown block type '{kind}' (gpt2 or bert)")
    model.set_attn_implementation("eager")
    model.eval()
    return list(model.h if kind == "gpt2" else model.encoder.layer)


def drift_inputs(sequences: int, length: int, d_model: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token vectors x (sequences, length, d) with E||x_i||^2 = 1, and a unit drift direction b."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((sequences, length, d_model)) / np.sqrt(d_model)
    b = rng.standard_normal(d_model)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(b / np.linalg.norm(b), dtype=torch.float32)


def run_blocks(
    blocks: list[torch.nn.Module], kind: str, h: torch.Tensor, n_head: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each block's output (S, T, d) and attention weights (S, H, T, T), the blocks applied in turn."""
    length = h.shape[1]
    mask = None
    if kind == "gpt2":  # a decoder block: causal additive mask
        mask = torch.triu(torch.full((length, length), torch.finfo(h.dtype).min), 1)[None, None]
    seen: list[torch.Tensor] = []
    handles = [
        find_sites(b, n_head)[0].module.register_forward_hook(lambda _m, _a, out: seen.append(out[1])) for b in blocks
    ]
    results = []
    try:
        with torch.inference_mode():
            for block in blocks:
                h = block(h, attention_mask=mask)
                results.append((h, seen.pop()))
    finally:
        for handle in handles:
            handle.remove()
    return results


def drift_site(block: torch.nn.Module, kind: str, x: torch.Tensor, shift: torch.Tensor):
    """The first block's input, what its attention reads, and the hook (or None) that adds ``shift`` there."""
    if kind == "bert":
        return x + shift, x + shift, None
    with torch.inference_mode():
        read = block.ln_1(x) + shift
    return x, read, block.ln_1.register_forward_hook(lambda _m, _a, out: out + shift)


def block_measures(h_in: torch.Tensor, out: torch.Tensor, weights: torch.Tensor, causal: bool) -> dict:
    """Mean cosine of inputs and outputs over all tokens, output mean norm, attention entropy and largest weight."""
    entropy, largest = entropy_and_max(weights)
    length = weights.shape[-1]
    keys = np.arange(1, length + 1) if causal else np.full(length, length)
    flat = out.reshape(-1, out.shape[-1]).double().numpy()
    return {
        "input_mean_cos": mean_pairwise_cosine(h_in.reshape(-1, h_in.shape[-1]).numpy()),
        "mean_cos": mean_pairwise_cosine(flat),
        "mean_norm": float(np.linalg.norm(flat, axis=1).mean()),
        "mean_entropy": float(entropy.mean()),
        "uniform_entropy": float(np.log(keys).mean()),
        "mean_max_weight": float(largest.mean()),
    }


def drift_table(settings: dict) -> pl.DataFrame:
    """One row per (block type, repeat, drift N, block): the measures of ``block_measures``."""
    s = settings
    rows = []
    grid = drift_grid(s["drift_min"], s["drift_max"], s["points"])
    progress = Progress(len(s["blocks"]) * s["repeats"] * len(grid), "drift values")
    for kind in s["blocks"]:
        for repeat in range(s["repeats"]):
            seed = s["seed"] + repeat
            blocks = make_blocks(kind, s["d_model"], s["n_head"], s["n_blocks"], seed)
            x, b = drift_inputs(s["sequences"], s["length"], s["d_model"], seed)
            for drift in grid:
                h, read, hook = drift_site(blocks[0], kind, x, float(drift) * b)
                try:
                    outputs = run_blocks(blocks, kind, h, s["n_head"])
                finally:
                    if hook is not None:
                        hook.remove()
                for index, (out, weights) in enumerate(outputs):
                    rows.append(
                        {
                            "block_type": kind,
                            "repeat": repeat,
                            "drift": float(drift),
                            "block": index + 1,
                            **block_measures(read, out, weights, kind == "gpt2"),
                        }
                    )
                    read = out
                progress.update(1)
    progress.update(0, force=True)
    return pl.DataFrame(rows, schema=DRIFT_SCHEMA)
