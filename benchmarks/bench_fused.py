"""Fused extraction against store mode, every analysis on: time over the bare forward, bytes written per token.

Every streamed analysis of the registry runs, with its selection and settings from config/config.yaml (the default
run's), and store mode makes every pass the workflow makes (the stream shard, anisotropy's centered pass, the
dimensions' standardized pass, the ID sample read).

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_fused.py [--model smollm2-135m] [--contexts 32 128] [--repeats 2]
The bare forward is timed twice: as store-mode extraction runs it (freed memory returned to the OS at once) and with
the fused job's heap policy (`reuse_heap`: freed memory reused by the next batch), which alone makes the CPU forward
faster; the fused job's ratio to each is printed.
Each measurement (bare forward, fused, store + stream passes) runs in a fresh process, as a job would, so that
one run's heap does not speed up or slow down the next; the three are interleaved so that load hits all alike.
On a machine with CUDA the fused run uses the GPU (accumulators there too); without one it says so and runs on CPU.
Prints a Markdown section for BENCHMARKS.md.
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
import torch
import yaml
from bench_extract import SETTINGS, bare_forward

from layergeom.analyses.anisotropy.accumulate import SAMPLE, centered_feeds, sample_feeds
from layergeom.analyses.anisotropy.intrinsic_dimension import subsample_rows
from layergeom.analyses.dimensions.accumulate import standardized_feeds
from layergeom.analyses.dimensions.metrics import standardization
from layergeom.analyses.jobs import fused_feeds, stream_feeds
from layergeom.analyses.registry import ANALYSES
from layergeom.corpus import build_corpus
from layergeom.extraction.forward import HiddenStates
from layergeom.extraction.fused import fused_shard
from layergeom.extraction.memory import limit_heap_retention, reuse_heap
from layergeom.extraction.models import load_model
from layergeom.extraction.sequences import build_sequences, plan_batches, token_table
from layergeom.extraction.sources import resolve_source
from layergeom.extraction.writer import extract
from layergeom.io.store import open_hidden, read_tokens
from layergeom.stats.protocol import load_merged
from layergeom.stats.scatter import Scatter
from layergeom.stream.driver import stream_layers
from layergeom.stream.feeds import scatter_name
from layergeom.stream.job import stream_shard
from layergeom.stream.selection import token_mask

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
TOKEN_KEYS = ("include_special", "exclude_first_position")


def selection_of(name: str) -> dict:
    """An analysis' token selection as the default config sets it: its own keys, else the `selection` section."""
    section = CONFIG.get(name) or {}
    return {key: CONFIG["selection"][key] if section.get(key) is None else section[key] for key in TOKEN_KEYS}


#: the default run's model of this source and its contexts corpus: the analyses that cover them are benchmarked
COVERED = ("smollm2", "bbc_contexts")
PLANS = {
    a.name: {"selection": selection_of(a.name), "settings": CONFIG.get(a.name)}
    for a in ANALYSES.values()
    if a.streamed and (a.covers is None or a.covers(CONFIG, *COVERED))
}
ID = CONFIG["anisotropy"]["id"]


def prepare(model: str, contexts: int, device: str):
    """Load the model and cut ``contexts`` BBC contexts of 128 tokens."""
    torch.set_num_threads(2)
    limit_heap_retention()
    loaded = load_model(resolve_source(model), device=device)
    entry = {"source": "bbc", "min_words": 3, "max_words": 64, "max_documents": None, "sample": {}}
    docs, sents = build_corpus({**entry, "sample": {"n_sentences": None, "fraction": None, "seed": 0}})
    spec = {"sequences": {"mode": "contexts", "length": 128, "count": contexts, "per_document": 1, "seed": 0}}
    return loaded, build_sequences(loaded, spec, docs, sents, SETTINGS["max_length"])


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file)."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def all_feeds(table, fused: bool):
    """The feeds of every analysis; fused mode adds what each takes from the forward pass (the samples)."""
    if fused:
        return fused_feeds(PLANS)(table)
    return stream_feeds({name: plan["selection"] for name, plan in PLANS.items()})(table)


def layer_scatters(parts: Path, table, name: str, n_layers: int) -> list[Scatter]:
    """Every layer's merged scatter of the tokens analysis ``name`` selects."""
    mask = token_mask(table, **PLANS[name]["selection"])
    return [load_merged([parts], layer, scatter_name(mask), Scatter) for layer in range(n_layers)]


def fused_run(loaded, seqs, tmp: Path) -> tuple[float, int]:
    """Seconds and bytes written of a fused extraction: token table, then the forward pass into the accumulators."""
    start = time.perf_counter()
    order, _ = plan_batches(seqs.lengths(), SETTINGS["batch_tokens"])
    table = token_table(seqs, order, loaded.tokenizer)
    table.write_parquet(tmp / "tokens.parquet")
    fused_shard(HiddenStates(loaded), seqs, all_feeds(table, True), table.height, SETTINGS, "0-of-1", tmp / "parts")
    seconds = time.perf_counter() - start
    return seconds, folder_bytes(tmp / "tokens.parquet") + folder_bytes(tmp / "parts")


def store_run(loaded, seqs, tmp: Path) -> tuple[float, float, int]:
    """Seconds of extraction, seconds of the store's streaming passes (stream shard, centered pass, standardized
    pass, ID sample read) and bytes written by all of them."""
    states, tokens = tmp / "states.zarr", tmp / "tokens.parquet"
    start = time.perf_counter()
    extract(loaded, seqs, states, tokens, SETTINGS, {"config_hash": "bench"})
    extracted = time.perf_counter()
    stream_shard(states, tokens, tmp / "parts", "0-of-1", lambda table: all_feeds(table, False))
    table = read_tokens(tokens)
    n_layers = open_hidden(states).shape[0]
    chosen = PLANS["anisotropy"]["selection"]
    means = np.stack([scatter.mean for scatter in layer_scatters(tmp / "parts", table, "anisotropy", n_layers)])
    stream_shard(states, tokens, tmp / "centered", "0-of-1", lambda t: centered_feeds(t, chosen, means))
    standardize = np.stack([standardization(s) for s in layer_scatters(tmp / "parts", table, "dimensions", n_layers)])
    picked = PLANS["dimensions"]["selection"]
    stream_shard(states, tokens, tmp / "standardized", "0-of-1", lambda t: standardized_feeds(t, picked, standardize))
    rows = subsample_rows(table, token_mask(table, **chosen), ID["n_points"], ID["sample"], ID["seed"])
    for _layer, accumulators in stream_layers(open_hidden(states), sample_feeds(table.height, rows)):
        accumulators[SAMPLE].finalize()
    streamed = time.perf_counter()
    passes = ("states.zarr", "tokens.parquet", "parts", "centered", "standardized")
    written = sum(folder_bytes(tmp / name) for name in passes)
    return extracted - start, streamed - extracted, written


def measure(what: str, model: str, contexts: int, device: str) -> dict:
    """One measurement in this process: seconds (and bytes written) of ``what`` after a warm-up forward."""
    loaded, seqs = prepare(model, contexts, device)
    bare_forward(loaded, seqs)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        if what == "bare":
            return {"seconds": bare_forward(loaded, seqs)}
        if what == "bare_heap":  # the forward alone with the fused job's heap policy (freed memory reused)
            with reuse_heap():
                return {"seconds": bare_forward(loaded, seqs)}
        if what == "fused":
            seconds, written = fused_run(loaded, seqs, Path(tmp))
            return {"seconds": seconds, "bytes": written}
        extracted, streamed, written = store_run(loaded, seqs, Path(tmp))
        return {"seconds": extracted + streamed, "extract": extracted, "streams": streamed, "bytes": written}


def fresh(what: str, model: str, contexts: int) -> dict:
    """:func:`measure` in a fresh process."""
    command = [sys.executable, __file__, "--one", what, "--model", model, "--contexts", str(contexts)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(model: str, contexts: int, rounds: list[dict], device: str) -> None:
    """The Markdown table of one corpus size."""
    loaded, seqs = prepare(model, contexts, device)
    tokens = int(seqs.lengths().sum())
    print(
        f"\n**{contexts} contexts of 128 tokens ({tokens} tokens)**, model `{model}` ({loaded.n_layers + 1} hidden "
        f"states, d = {loaded.d_model}) on {device}, batch_tokens={SETTINGS['batch_tokens']}, 2 threads; analyses "
        f"{', '.join(PLANS)}; store mode with a {SETTINGS['dtype']} store.\n"
    )
    print(
        "| round | bare forward s | bare forward, heap kept s | fused s | fused / bare | fused / bare, heap kept | "
        "store extract s | store streams s | store / bare |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rounds, 1):
        bare, kept, fused, store = r["bare"]["seconds"], r["bare_heap"]["seconds"], r["fused"]["seconds"], r["store"]
        print(
            f"| {i} | {bare:.2f} | {kept:.2f} | {fused:.2f} | {fused / bare:.2f} | {fused / kept:.2f} | "
            f"{store['extract']:.2f} | {store['streams']:.2f} | {store['seconds'] / bare:.2f} |"
        )
    table = token_table(seqs, plan_batches(seqs.lengths(), SETTINGS["batch_tokens"])[0], loaded.tokenizer)
    mask = token_mask(table, **PLANS["anisotropy"]["selection"])
    sample = len(subsample_rows(table, mask, ID["n_points"], ID["sample"], ID["seed"]))
    sample_bytes = sample * (loaded.n_layers + 1) * loaded.d_model * 4
    print(
        f"\nBytes written per token: fused {rounds[-1]['fused']['bytes'] / tokens:,.0f} (of which the "
        f"intrinsic-dimension sample of {sample} points, float32, {sample_bytes / tokens:,.0f}), "
        f"store {rounds[-1]['store']['bytes'] / tokens:,.0f}."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--contexts", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", choices=["bare", "bare_heap", "fused", "store"])
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        print(json.dumps(measure(args.one, args.model, args.contexts[0], device)))
        return
    if device == "cpu":
        print("No CUDA device here: the CUDA path (forward and float64 accumulators on the GPU) is skipped; CPU run.")
    for contexts in args.contexts:
        runs = ("bare", "bare_heap", "fused", "store")
        rounds = [{what: fresh(what, args.model, contexts) for what in runs} for _ in range(args.repeats)]
        report(args.model, contexts, rounds, device)


if __name__ == "__main__":
    main()
