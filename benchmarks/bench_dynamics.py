"""Benchmark of the training-dynamics stages: training throughput, attention hooks vs a bare forward, drift.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_dynamics.py  (prints a Markdown section)
"""

from __future__ import annotations

import time

import numpy as np
import torch

from layergeom.analyses.attention.heads import head_stats
from layergeom.analyses.dynamics.drift import drift_table
from layergeom.extraction.forward import HiddenStates
from layergeom.extraction.models import LoadedModel
from layergeom.extraction.sequences import Sequences, plan_batches
from layergeom.training.train import TrainData, Trainer

RUN = {
    "corpus": "synthetic",
    "vocab_size": 4096,
    "min_frequency": 2,
    "n_layer": 4,
    "n_embd": 256,
    "n_head": 4,
    "context_length": 128,
    "steps": 400,
    "batch_size": 16,
    "learning_rate": 2e-3,
    "warmup_steps": 16,
    "min_lr_ratio": 0.1,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "dropout": 0.0,
    "eval_fraction": 0.05,
    "eval_batches": 4,
    "log_checkpoints": True,
    "checkpoint_every": None,
    "seed": 0,
    "device": "cpu",
}
DRIFT = {
    "blocks": ["gpt2", "bert"],
    "n_blocks": 2,
    "d_model": 256,
    "n_head": 4,
    "sequences": 8,
    "length": 64,
    "drift_min": 0.01,
    "drift_max": 1e4,
    "points": 13,
    "repeats": 2,
    "seed": 0,
}
N_CTX, T, STEPS, REPEATS = 250, 64, 12, 3


class Vocab:
    """Stands in for the tokenizer: only its size and end-of-text id are used."""

    eos_token_id = 0

    def __len__(self) -> int:
        return RUN["vocab_size"]


def main() -> None:
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    data = TrainData(rng.integers(0, RUN["vocab_size"], (2000, RUN["context_length"])), np.zeros((0, 128), np.int64))
    trainer = Trainer(RUN, Vocab(), data, "cpu")
    trainer.model.train()
    trainer.update()  # warm-up
    start = time.perf_counter()
    for _ in range(STEPS):
        trainer.update()
    step_s = (time.perf_counter() - start) / STEPS

    model = trainer.model.transformer.eval()
    loaded = LoadedModel(model, None, torch.device("cpu"), "decoder", RUN["n_layer"], RUN["n_embd"])
    ids = [rng.integers(0, RUN["vocab_size"], T) for _ in range(N_CTX)]
    seqs = Sequences(np.arange(N_CTX), np.arange(N_CTX), [None] * N_CTX, ids, [np.zeros(T, bool)] * N_CTX)
    keep = [np.ones(T, bool)] * N_CTX
    _, batches = plan_batches(seqs.lengths(), 8192)
    bare, hooked = [], []
    for _ in range(REPEATS):  # interleaved, best of REPEATS
        model.set_attn_implementation("sdpa")
        runner = HiddenStates(loaded)
        start = time.perf_counter()
        for rows in batches:
            runner.forward(seqs, rows)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        head_stats(loaded, seqs, keep, 8192)
        hooked.append(time.perf_counter() - start)
    start = time.perf_counter()
    table = drift_table(DRIFT)
    drift_s = time.perf_counter() - start

    tokens = N_CTX * T
    print("### training dynamics\n")
    print(f"GPT-2 of the default run (4 x 256, 4 heads, vocab 4096), CPU, 2 threads; {N_CTX} contexts x {T} tokens.\n")
    print("| step | seconds | rate |")
    print("| --- | ---: | ---: |")
    tok_s = RUN["batch_size"] * RUN["context_length"] / step_s
    print(f"| training update (16 x 128 tokens), mean of {STEPS} | {step_s:.3f} | {tok_s:,.0f} tokens/s |")
    print(f"| default run, 400 updates (estimate) | {400 * step_s:.0f} | |")
    print(f"| bare forward (sdpa), best of {REPEATS} | {min(bare):.2f} | {tokens / min(bare):,.0f} tokens/s |")
    print(
        f"| attention statistics (eager + hooks), best of {REPEATS} | {min(hooked):.2f} "
        f"| {tokens / min(hooked):,.0f} tokens/s |"
    )
    print(f"| drift experiment, default settings ({table.height} rows) | {drift_s:.2f} | |")
    print(f"\nattention statistics / bare forward: {min(hooked) / min(bare):.2f}x")


if __name__ == "__main__":
    main()
