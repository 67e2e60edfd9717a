"""Fused extraction against the bare forward on CUDA at three shard sizes, and a cProfile of one fused run.

Run on a CUDA machine, after the wheel install of benchmarks/gpu_check.py:
    PYTHONPATH=/tmp/site:src python3 benchmarks/gpu_scale.py
Prints one Markdown row per size (tokens, bare s, fused s, fused / bare, bytes written per token), then the
profile of the fused run on 131,072 tokens by cumulative and by own time.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
from pathlib import Path

import torch
import transformers
from bench_extract import bare_forward
from bench_fused import fused_run
from gpu_check import save_random_model, token_sequences

from layergeom.extraction.models import load_model
from layergeom.extraction.sources import ModelSource

LENGTH = 128
SIZES = (256, 1024, 2048)  # sequences of LENGTH tokens


def main() -> None:
    """Time bare and fused (after one warm-up each) at every size; profile one fused run."""
    torch.backends.cuda.matmul.allow_tf32 = False
    tmp = Path(tempfile.mkdtemp())
    config = transformers.GPT2Config(vocab_size=50257, n_positions=1024, n_layer=24, n_embd=1024, n_head=16)
    loaded = load_model(ModelSource(str(save_random_model(tmp / "m", config))), device="cuda")

    def fused(seqs) -> tuple[float, int]:
        """Seconds and bytes of one fused run, synchronised."""
        with tempfile.TemporaryDirectory(dir=tmp) as run_dir:
            torch.cuda.synchronize()
            seconds, written = fused_run(loaded, seqs, Path(run_dir))
            torch.cuda.synchronize()
            return seconds, written

    print("| tokens | bare s | fused s | fused / bare | bytes per token |\n|---:|---:|---:|---:|---:|")
    for n in SIZES:
        seqs = token_sequences(n, LENGTH, config.vocab_size)
        bare_forward(loaded, seqs), fused(seqs)  # warm-up
        bare = bare_forward(loaded, seqs)
        seconds, written = fused(seqs)
        print(f"| {n * LENGTH} | {bare:.3f} | {seconds:.3f} | {seconds / bare:.2f} | {written / (n * LENGTH):,.0f} |")
    profile = cProfile.Profile()
    profile.enable()
    fused(token_sequences(SIZES[1], LENGTH, config.vocab_size))
    profile.disable()
    for order, rows in (("cumulative", 35), ("tottime", 20)):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats(order).print_stats(rows)
        print(text.getvalue())


if __name__ == "__main__":
    main()
