"""Extraction in K = 1 and K = 3 shards: identical store bytes and token table (times shown, not compared).

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_shards.py [--model smollm2-135m] [--contexts 48]
The shards run one after another in this process, as K cluster jobs would run side by side; each computes
the global batches that overlap its chunk-aligned token range. Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_fused import prepare

from layergeom.extraction.writer import Extraction, finalize_store
from layergeom.io.shards import shard_ids

SETTINGS = {"dtype": "float16", "chunk_tokens": 1024, "shard_tokens": None, "batch_tokens": 1024, "max_length": 512}


def run(loaded, seqs, folder: Path, shards: int) -> float:
    """Seconds to extract into ``folder`` with ``shards`` shard jobs (prepare, every region, finalize)."""
    start = time.perf_counter()
    job = Extraction(loaded, seqs, {**SETTINGS, "shards": shards}, {"model": "bench", "config_hash": "bench"})
    states, tokens = folder / "states.zarr", folder / "tokens.parquet"
    job.prepare(states, tokens)
    for shard in shard_ids(shards):
        job.write_region(states, shard)
    finalize_store(states, tokens, shard_ids(shards))
    return time.perf_counter() - start


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--contexts", type=int, default=48)
    args = parser.parse_args()
    loaded, seqs = prepare(args.model, args.contexts, "cpu")
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as three:
        t1 = run(loaded, seqs, Path(one), 1)
        t3 = run(loaded, seqs, Path(three), 3)
        a, b = files(Path(one)), files(Path(three))
    same = a.keys() == b.keys() and all(a[name] == b[name] for name in a)
    tokens = int(seqs.lengths().sum())
    print(
        f"Model `{args.model}` on {args.contexts} BBC contexts of 128 tokens ({tokens} tokens), "
        f"chunk_tokens={SETTINGS['chunk_tokens']}, batch_tokens={SETTINGS['batch_tokens']}, CPU.\n"
    )
    print("| shards K | seconds (shards one after another) | files | identical to K = 1 |")
    print("|---:|---:|---:|---|")
    print(f"| 1 | {t1:.1f} | {len(a)} | - |")
    print(f"| 3 | {t3:.1f} | {len(b)} | {'yes, every file byte for byte' if same else 'NO'} |")
    if not same:
        raise SystemExit("the stores differ")


if __name__ == "__main__":
    main()
