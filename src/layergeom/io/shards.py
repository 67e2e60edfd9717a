"""Token shards: contiguous block-aligned ranges of a store, named ``k-of-n`` in every rule."""

from __future__ import annotations

import re

SHARD_PATTERN = r"\d+-of-\d+"


def shard_ids(n_shards: int) -> list[str]:
    """Names of the shards ``0-of-n`` ... ``(n-1)-of-n``."""
    return [f"{k}-of-{n_shards}" for k in range(n_shards)]


def parse_shard(shard: str) -> tuple[int, int]:
    """(k, n) of a shard name ``k-of-n``."""
    match = re.fullmatch(r"(\d+)-of-(\d+)", shard)
    if not match:
        raise ValueError(f"shard '{shard}' is not of the form k-of-n")
    k, n = int(match.group(1)), int(match.group(2))
    if not 0 <= k < n:
        raise ValueError(f"shard {k} is not in 0..{n - 1}")
    return k, n


def shard_range(n_tokens: int, step: int, shard: int, n_shards: int) -> tuple[int, int]:
    """Token range [start, stop) of shard ``shard`` of ``n_shards``, cut at multiples of ``step``."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in 0..{n_shards - 1}")
    blocks = -(-n_tokens // step)
    start = blocks * shard // n_shards * step
    stop = blocks * (shard + 1) // n_shards * step
    return min(start, n_tokens), min(stop, n_tokens)
