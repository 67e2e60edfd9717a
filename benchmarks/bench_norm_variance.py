"""Norm-variance statistics benchmark: streaming the per-type moments vs merely reading the chunks.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_norm_variance.py [--tokens 40960] [--d 576]
Builds synthetic float16 stores (d = 576 like SmolLM2-135M, Zipf token ids over a 49152 vocabulary)
of N and 10 N tokens, and prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import zarr

from layergeom.analyses.jobs import run_stream_shard
from layergeom.analyses.norm_variance.accumulate import NAME, feeds
from layergeom.io.store import create_store, iter_layer, open_hidden, prefetched
from layergeom.stream.driver import stream_layers

VOCAB = 49152
FOLDED = 1000  # a fixed small vocabulary: memory must then not depend on the number of tokens
CHUNK = 4096
SELECTION = {"include_special": False, "exclude_first_position": False}


def build(path: Path, n_tokens: int, d: int, seed: int = 0) -> None:
    """A one-layer float16 store of type means plus noise, with its ids and positions beside it."""
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.2, size=n_tokens), VOCAB) - 1
    positions = np.arange(n_tokens) % 24
    centers = np.random.default_rng(seed + 1).normal(0.0, 1.0, size=(VOCAB, d)).astype(np.float32)
    array = create_store(path / "states.zarr", 1, n_tokens, d, "float16", CHUNK, None, {})
    for start in range(0, n_tokens, CHUNK):
        stop = min(start + CHUNK, n_tokens)
        noise = rng.normal(0.0, 0.5, size=(stop - start, d)).astype(np.float32)
        array[0, start:stop] = (3.0 * centers[ids[start:stop]] + noise).astype(np.float16)
    np.savez(path / "tokens.npz", ids=ids, positions=positions)


def token_table(path: Path, vocab: int = VOCAB) -> pl.DataFrame:
    """The store's token table, ids folded into ``vocab`` types, no special token (every token selected)."""
    with np.load(path / "tokens.npz") as data:
        ids, positions = data["ids"] % vocab, data["positions"]
    return pl.DataFrame({"position": positions, "token_id": ids, "is_special": np.zeros(len(ids), dtype=bool)})


def read_only(array: zarr.Array) -> int:
    """Stream the layer's blocks exactly as the stream driver does, doing nothing with them."""
    rows = 0
    for block in prefetched(iter_layer(array, 0, np.ones(array.shape[1], dtype=bool))):
        rows += len(block.rows)
    return rows


def timings(path: Path, repeats: int) -> dict:
    """Best-of-``repeats`` seconds to read the layer and to compute its moments (read included)."""
    array, tokens = open_hidden(path / "states.zarr"), token_table(path)
    read_only(array)  # warm the page cache so both runs read from memory
    read, stats = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        read_only(array)
        read.append(time.perf_counter() - start)
        start = time.perf_counter()
        [(layer, accumulators)] = stream_layers(array, feeds(tokens, SELECTION), [0])
        stats.append(time.perf_counter() - start)
    return {"tokens": tokens.height, "read": min(read), "stats": min(stats), "types": len(accumulators[NAME])}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited over exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def child(path: Path, vocab: int) -> dict:
    """One stream shard job over the whole store, norm_variance only (as rule stream runs it); its peak RSS."""
    with tempfile.TemporaryDirectory() as out:
        token_table(path, vocab).write_parquet(Path(out) / "tokens.parquet")
        baseline = peak_rss_mb()
        start = time.perf_counter()
        run_stream_shard(
            path / "states.zarr",
            Path(out) / "tokens.parquet",
            Path(out) / "part",
            "0-of-1",
            {"norm_variance": SELECTION},
        )
        seconds = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (Path(out) / "part").iterdir()) / 2**20
    peak = peak_rss_mb()
    return {"seconds": seconds, "baseline_mb": baseline, "peak_mb": peak, "part_mb": size}


def in_subprocess(path: Path, vocab: int = VOCAB) -> dict:
    """Run :func:`child` in a fresh interpreter so that its peak memory is its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--vocab", str(vocab)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10 * CHUNK)
    parser.add_argument("--d", type=int, default=576)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--vocab", type=int, default=VOCAB)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.vocab)))
        return
    rows, folded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n_tokens in (args.tokens, 10 * args.tokens):
            path = Path(tmp) / str(n_tokens)
            path.mkdir()
            build(path, n_tokens, args.d)
            rows.append({**timings(path, args.repeats), **in_subprocess(path)})
            folded.append(in_subprocess(path, FOLDED))
    print(
        f"Synthetic uncompressed float16 store (the extraction default), d = {args.d}, chunk_tokens = {CHUNK}, "
        f"Zipf(1.2) token ids over {VOCAB} types, one layer, block = one chunk, best of {args.repeats}, "
        "page cache warm, one process on a shared 2-core machine.\n"
    )
    print(
        "| tokens | types seen | read only (s) | read + stats (s) | stats / read "
        "| read tokens/s | stats tokens/s | shard job peak RSS (MiB) | before the job (MiB) "
        "| part file (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['tokens']} | {r['types']} | {r['read']:.2f} | {r['stats']:.2f} "
            f"| {r['stats'] / r['read']:.2f} | {r['tokens'] / r['read']:,.0f} "
            f"| {r['tokens'] / r['stats']:,.0f} | {r['peak_mb']:.0f} | {r['baseline_mb']:.0f} "
            f"| {r['part_mb']:.1f} |"
        )
    small, large = rows
    print(
        f"\nPeak RSS grows {large['peak_mb'] - small['peak_mb']:.0f} MiB for 10x the tokens; the "
        f"accumulator holds one float64 mean per type seen ({small['types']} -> {large['types']} "
        f"types, {small['part_mb']:.0f} -> {large['part_mb']:.0f} MiB), never the layer itself. "
        f"With the ids folded into {FOLDED} types the peak RSS is {folded[0]['peak_mb']:.0f} MiB "
        f"at {small['tokens']} tokens and {folded[1]['peak_mb']:.0f} MiB at {large['tokens']} tokens."
    )


if __name__ == "__main__":
    main()
