"""Benchmark of the posctx stage on a synthetic contexts store: streaming pass vs a plain read, and merge.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_posctx.py  (prints a Markdown section)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from layergeom.analyses.jobs import run_stream_shard
from layergeom.analyses.posctx.components import run_merge
from layergeom.analyses.posctx.metrics import Settings
from layergeom.io.store import create_store, iter_layer, open_hidden

N_CTX, T, D, N_LAYERS, CHUNK = 250, 64, 576, 4, 4096


def build(root: Path) -> None:
    """A float16 store of N_CTX contexts x T tokens, sequences in shuffled order."""
    rng = np.random.default_rng(0)
    seq = np.repeat(rng.permutation(N_CTX), T)
    position = np.tile(np.arange(T), N_CTX)
    pl.DataFrame(
        {
            "seq_id": seq,
            "doc_id": seq,
            "topic": [str(s % 5) for s in seq],
            "position": position,
            "token_id": np.zeros_like(seq),
            "token": ["x"] * seq.size,
            "is_special": np.zeros(seq.size, bool),
        }
    ).write_parquet(root / "tokens.parquet")
    array = create_store(
        root / "states.zarr",
        N_LAYERS,
        seq.size,
        D,
        "float16",
        CHUNK,
        None,
        {"model": "synthetic", "corpus": "synthetic", "layer_names": None},
    )
    for layer in range(N_LAYERS):
        array[layer] = rng.standard_normal((seq.size, D)).astype(np.float16)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root)
        array = open_hidden(root / "states.zarr")
        start = time.perf_counter()
        for layer in range(N_LAYERS):
            for _ in iter_layer(array, layer):
                pass
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        plans = {"posctx": {"include_special": False, "exclude_first_position": True}}
        run_stream_shard(root / "states.zarr", root / "tokens.parquet", root / "part", "0-of-1", plans)
        shard_s = time.perf_counter() - start
        start = time.perf_counter()
        run_merge(
            root / "states.zarr",
            root / "tokens.parquet",
            [root / "part"],
            root / "components.zarr",
            root / "layers.parquet",
            False,
            True,
            Settings(),
        )
        merge_s = time.perf_counter() - start
    tokens = N_CTX * T * N_LAYERS
    print("### posctx (synthetic float16 store)\n")
    print(f"{N_CTX} contexts x {T} tokens, d = {D}, {N_LAYERS} layers, chunk {CHUNK} tokens, 1 shard.\n")
    print("| step | seconds | tokens x layers / s |")
    print("| --- | --- | --- |")
    print(f"| plain read (iter_layer, float64) | {read_s:.2f} | {tokens / read_s:,.0f} |")
    print(f"| shard pass (sums + d x d scatter) | {shard_s:.2f} | {tokens / shard_s:,.0f} |")
    print(f"| merge (decompose, metrics, write) | {merge_s:.2f} | |")
    print(f"\nshard pass / plain read: {shard_s / read_s:.1f}x")


if __name__ == "__main__":
    main()
