"""Benchmark of the anisotropy stage; prints a Markdown section for BENCHMARKS.md.

1. Our TwoNN (exact float64 neighbours) against scikit-dimension's TwoNN on 4096 points of the
   embedded models' widths (384: MiniLM, 576: SmolLM2-135M): time and estimate.
2. The streaming anisotropy passes against the time to stream the same store (read + float64).
Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_anisotropy.py
BLAS threads default to 1, as in a workflow job with `threads: 1`; BENCH_THREADS=n changes it.
"""

from __future__ import annotations

import os

THREADS = os.environ.get("BENCH_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import skdim  # noqa: E402

from layergeom.analyses.anisotropy.accumulate import centered_feeds, feeds  # noqa: E402
from layergeom.analyses.anisotropy.intrinsic_dimension import (  # noqa: E402
    distinct_rows,
    estimate,
    nearest_distances,
    twonn_from_ratios,
)
from layergeom.io.store import create_store, iter_layer, open_hidden  # noqa: E402
from layergeom.stream.driver import stream_layers  # noqa: E402
from layergeom.stream.feeds import scatter_name  # noqa: E402

REPEATS = 5
SELECTION = {"include_special": False, "exclude_first_position": False}


def best_time(fn, repeats: int = REPEATS) -> tuple[float, object]:
    """Fastest of ``repeats`` wall-clock runs and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def hidden_like(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Points near a curved 12-dimensional manifold with a common offset, like hidden states."""
    z = rng.standard_normal((n, 12))
    curved = np.tanh(z @ rng.standard_normal((12, 64))) @ rng.standard_normal((64, d))
    return 3.0 * rng.standard_normal(d) + curved + 0.05 * rng.standard_normal((n, d))


def our_twonn(x: np.ndarray, discard: float = 0.1) -> float:
    """TwoNN (slope form) from exact neighbours, one copy of each duplicated point kept, no bootstrap."""
    r = nearest_distances(x[distinct_rows(x)], 2)
    slope, _ = twonn_from_ratios(r[:, 1] / r[:, 0], discard)
    return float(slope)


def bench_twonn() -> list[str]:
    lines = [
        "| width d | points | skdim TwoNN (s) | ours (s) | speed-up | skdim estimate | our estimate | abs. difference "
        "| ours + 200 bootstraps + Levina-Bickel k=20 (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in (384, 576):
        x = hidden_like(4096, d, np.random.default_rng(d))
        t_skdim, theirs = best_time(lambda: skdim.id.TwoNN(discard_fraction=0.1).fit(x).dimension_)
        t_ours, ours = best_time(lambda: our_twonn(x))
        t_full, _ = best_time(lambda: estimate(x), repeats=3)
        lines.append(
            f"| {d} | 4096 | {t_skdim:.3f} | {t_ours:.3f} | {t_skdim / t_ours:.1f}x | {theirs:.10f} | {ours:.10f} "
            f"| {abs(theirs - ours):.1e} | {t_full:.3f} |"
        )
    return lines


def bench_stream(folder: Path) -> list[str]:
    n_layers, n_tokens, chunk = 3, 65536, 4096
    lines = [
        "| width d | compression | layers x tokens | store (MB on disk) | read + float64 (s) "
        "| pass 1: unit sums + scatter (s) | ratio "
        "| pass 2: centered unit sums (s) | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d, compression in ((384, "none"), (576, "none"), (576, "zstd")):
        rng = np.random.default_rng(d)
        path = folder / f"bench_{d}_{compression}.zarr"
        array = create_store(path, n_layers, n_tokens, d, "float16", chunk, None, {}, compression)
        for layer in range(n_layers):
            for start in range(0, n_tokens, 16384):
                array[layer, start : start + 16384] = hidden_like(16384, d, rng).astype(np.float16)
        array = open_hidden(path)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        layers = range(n_layers)
        t_read, _ = best_time(lambda: [len(b.rows) for layer in layers for b in iter_layer(array, layer)], 3)
        tokens = pl.DataFrame({"position": np.arange(n_tokens), "is_special": np.zeros(n_tokens, dtype=bool)})
        pass1 = feeds(tokens, SELECTION)
        t_pass1, streamed = best_time(lambda: [accs for _, accs in stream_layers(array, pass1)], 3)
        means = np.stack([accs[scatter_name(pass1[0].mask)].mean for accs in streamed])
        pass2 = centered_feeds(tokens, SELECTION, means)
        t_pass2, _ = best_time(lambda: list(stream_layers(array, pass2)), 3)
        lines.append(
            f"| {d} | {compression} | {n_layers} x {n_tokens} | {size:.0f} | {t_read:.3f} | {t_pass1:.3f} "
            f"| {t_pass1 / t_read:.2f}x "
            f"| {t_pass2:.3f} | {t_pass2 / t_read:.2f}x |"
        )
    return lines


def main() -> None:
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print("### TwoNN: ours against scikit-dimension\n")
    print(
        f"Fastest of {REPEATS} runs; synthetic hidden-state-like points (12-dim curved manifold, offset, noise); "
        f"discard fraction 0.1; {cpu}, BLAS threads {THREADS}.\n"
    )
    print("\n".join(bench_twonn()))
    print("\n### Streaming anisotropy passes against reading the store\n")
    print(
        "float16 store, chunks of 4096 tokens (no compression is the extraction default); "
        "fastest of 3 runs over all layers.\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(bench_stream(Path(tmp))))


if __name__ == "__main__":
    main()
