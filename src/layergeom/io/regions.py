"""Token regions of a partial store written by extraction shards, and their progress files.

Shard ``k-of-K`` writes the chunk-aligned tokens ``shard_range(n_tokens, block, k, K)`` of the store and records
how far it got in ``.states.zarr.regions/k-of-K.json`` beside the store (never in the array's metadata, which
every shard shares), so a killed shard resumes on its own and the final step can check every region.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from layergeom.io import atomic
from layergeom.io.shards import parse_shard, shard_range


def regions_dir(states_path: str | os.PathLike) -> Path:
    """The folder of the progress files of the store at ``states_path`` (a hidden sibling)."""
    return atomic.temp_sibling(states_path, "regions")


def progress_path(states_path: str | os.PathLike, shard: str) -> Path:
    """Progress file of shard ``k-of-K``."""
    return regions_dir(states_path) / f"{shard}.json"


def region(n_tokens: int, block: int, shard: str) -> tuple[int, int]:
    """Stored tokens [start, stop) of shard ``k-of-K``: whole write blocks, token-balanced."""
    return shard_range(n_tokens, block, *parse_shard(shard))


def write_progress(path: Path, record: dict) -> None:
    """Write a progress record atomically."""
    with atomic.atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, sort_keys=True))


def resume_offset(path: Path, start: int, stop: int, config_hash: str) -> int:
    """First token of [start, stop) not yet written by an earlier run of the same region and inputs."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return start
    same = record.get("config_hash") == config_hash and (record.get("start"), record.get("stop")) == (start, stop)
    return int(record["completed_tokens"]) if same else start


def check_regions(states_path: str | os.PathLike, shards: list[str], n_tokens: int, block: int, config_hash: str):
    """Check that every shard wrote its whole region; return each region's ``last_layer_after_final_norm``."""
    flags = []
    for shard in shards:
        path = progress_path(states_path, shard)
        start, stop = region(n_tokens, block, shard)
        if not path.exists():
            raise RuntimeError(f"{path}: missing; shard {shard} (tokens {start}..{stop}) never ran")
        record = json.loads(path.read_text())
        if record.get("config_hash") != config_hash or (record["start"], record["stop"]) != (start, stop):
            raise RuntimeError(f"{path}: written for other inputs or another shard count than tokens {start}..{stop}")
        if record["completed_tokens"] != stop:
            raise RuntimeError(f"{path}: shard {shard} wrote tokens {start}..{record['completed_tokens']} of ..{stop}")
        flags.append(record["last_layer_after_final_norm"])
    return flags
