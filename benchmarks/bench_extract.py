"""Extraction benchmark: storing vs a bare forward over the same batches, and peak memory vs corpus size.

Run: .venv/bin/python benchmarks/bench_extract.py [--model minilm] [--sizes 1500 15000]
Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from layergeom.corpus import build_corpus
from layergeom.extraction.forward import HiddenStates
from layergeom.extraction.memory import limit_heap_retention
from layergeom.extraction.models import load_model, resolve_source
from layergeom.extraction.sequences import build_sequences, plan_batches
from layergeom.extraction.writer import extract

SETTINGS = {"dtype": "float16", "chunk_tokens": 4096, "shard_tokens": None, "batch_tokens": 8192, "max_length": 512}
MODE = {"mode": "sentences", "length": 128, "count": 1, "per_document": 1, "seed": 0}


def prepare(model: str, n: int):
    """Load the model and tokenise n sampled BBC sentences."""
    torch.set_num_threads(2)
    limit_heap_retention()  # as extract() does, so the bare forward runs under the same allocator settings
    loaded = load_model(resolve_source(model))
    entry = {
        "source": "bbc",
        "min_words": 3,
        "max_words": 64,
        "max_documents": None,
        "sample": {"n_sentences": n, "fraction": None, "seed": 0},
    }
    docs, sents = build_corpus(entry)
    return loaded, build_sequences(loaded, {"sequences": MODE}, docs, sents, SETTINGS["max_length"])


def bare_forward(loaded, seqs) -> float:
    """Seconds for the model's forward pass over the extraction's batches, storing nothing."""
    runner = HiddenStates(loaded)
    _, batches = plan_batches(seqs.lengths(), SETTINGS["batch_tokens"])
    start = time.perf_counter()
    for rows in batches:
        runner.forward(seqs, rows)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def stored(loaded, seqs) -> float:
    """Seconds for a full extraction into a temporary store."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        extract(loaded, seqs, Path(tmp) / "s.zarr", Path(tmp) / "t.parquet", SETTINGS, {"config_hash": "bench"})
        return time.perf_counter() - start


def peak_rss(model: str, n: int) -> dict:
    """Extract n sentences in a fresh process and return its peak resident memory."""
    out = subprocess.run([sys.executable, __file__, "--one", model, str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--sizes", type=int, nargs=2, default=[1500, 15000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", nargs=2)
    args = parser.parse_args()
    if args.one:
        loaded, seqs = prepare(args.one[0], int(args.one[1]))
        seconds = stored(loaded, seqs)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"tokens": int(seqs.lengths().sum()), "seconds": seconds, "peak_rss_mb": rss}))
        return
    small, large = args.sizes
    loaded, seqs = prepare(args.model, small)
    bare_forward(loaded, seqs)  # warm-up
    bare, store = [], []
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        bare.append(bare_forward(loaded, seqs))
        store.append(stored(loaded, seqs))
    tokens = int(seqs.lengths().sum())
    runs = {n: peak_rss(args.model, n) for n in (small, large)}
    print(
        f"Model `{args.model}`, {small} BBC sentences ({tokens} tokens), batch_tokens={SETTINGS['batch_tokens']}, "
        f"chunk_tokens={SETTINGS['chunk_tokens']}, float16 store without compression, 2 threads, CPU; "
        f"best of {args.repeats} interleaved runs.\n"
    )
    print("| run | seconds | tokens/s |")
    print("|---|---:|---:|")
    for name, times in (("bare forward (stores nothing)", bare), ("extract + store", store)):
        print(f"| {name} | {min(times):.2f} | {tokens / min(times):.0f} |")
    print(
        f"\nStoring overhead over the bare forward: {100 * (min(store) / min(bare) - 1):.1f}% (target at most 15%).\n"
    )
    print("| sentences | tokens | peak RSS (MiB) |")
    print("|---:|---:|---:|")
    for n, r in runs.items():
        print(f"| {n} | {r['tokens']} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
