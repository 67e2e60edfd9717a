"""The self-attention modules of a model: where its query and key projections are, for forward hooks, and the
entropy of attention rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STYLES = {"c_attn": ("c_attn",), "q_proj": ("q_proj", "k_proj"), "query": ("query", "key")}


def entropy_and_max(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy (nats, 0 log 0 = 0) and largest value of every attention row (last axis), in float64."""
    w = weights.double()
    return torch.special.entr(w).sum(-1), w.amax(-1)


@dataclass
class Site:
    """One self-attention module: its block index, projections and float64 sums over selected tokens."""

    layer: int
    module: torch.nn.Module
    style: str
    n_heads: int
    head_dim: int
    q_sum: np.ndarray | None = None
    k_sum: np.ndarray | None = None
    entropy_sum: np.ndarray | None = None
    max_sum: np.ndarray | None = None
    n: int = 0
    uniform_sum: float = 0.0


def find_sites(model: torch.nn.Module, n_heads: int) -> list[Site]:
    """Self-attention modules in forward order (cross-attention left out), numbered 1..L."""
    sites = []
    for _, module in model.named_modules():
        children = dict(module.named_children())
        for style, names in STYLES.items():
            if all(n in children for n in names) and not getattr(module, "is_cross_attention", False):
                q = children[names[0]]
                width = q.weight.shape[1] // 3 if style == "c_attn" else q.out_features
                sites.append(Site(len(sites) + 1, module, style, n_heads, width // n_heads))
                break
    if not sites:
        raise ValueError("no self-attention module with c_attn, q_proj/k_proj or query/key projections found")
    return sites


def has_rotary(model: torch.nn.Module) -> bool:
    """Whether the model rotates queries and keys by position (a ``rotary_emb`` module)."""
    return any(name.endswith("rotary_emb") for name, _ in model.named_modules())
