"""Capacity plan (docs/capacity.md): GPU-hours, jobs, disk and memory per job from formulas and stated assumptions.

Run: python benchmarks/capacity.py [--cpu-forward-s 21.83 --cpu-fused-s 37.68 --cpu-tokens 16384]
(the defaults are bench_fused.py's first round of 16384 tokens on the 2-core machine at 4778971, the forward with the
fused job's heap policy; BENCHMARKS.md). Prints Markdown.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

GB = 1e9
# Assumed GPU: NVIDIA H100 SXM, dense peak 989 TFLOP/s bf16 and 67 TFLOP/s float64 (tensor cores).
BF16_PEAK, FP64_PEAK = 989e12, 67e12
FORWARD_UTILISATION, FP64_UTILISATION = 0.40, 0.50
GPU_MEMORY_GB = 80
WRITE_GBPS = 2.0  # assumed sustained write (and read) of a parallel file system per job, GB/s
N_POINTS = 4096  # anisotropy.id.n_points and dimensions.sample.n_points
STORE_READS = (
    4  # store mode reads the store in the stream shards (twice for linearity's pairs), and in anisotropy's and
)
# dimensions' second passes
BATCH_TOKENS = 8192
MASSIVE_BYTES = 1602 * 8 + 100 * 24  # massive: |x| histogram (1600 bins, underflow, overflow) and 100 top entries
SCATTER_FLOP = 2 + 2  # per d^2, token and layer: the d x d scatter, and linearity's cross products
TOKEN_TABLE_BYTES = 40  # bytes per token of tokens.parquet, upper bound (seq, doc, position, id, flags, topic)


@dataclass(frozen=True)
class Plan:
    """A model on a corpus; ``params`` counts every weight, ``hidden`` the hidden states (embeddings + blocks)."""

    name: str
    params: float
    hidden: int
    d: int
    vocab: int
    tokens: float
    shards: int


PLANS = [
    Plan("Pythia-12B", 11_846_072_320, 37, 5120, 50_688, 10e6, 4),
    Plan("GPT-2 (124M)", 124_439_808, 13, 768, 50_257, 12e6, 1),
]


def layer_bytes(p: Plan) -> dict[str, float]:
    """Accumulator bytes of one layer (config/README.md, Memory of a fused job), types T = 2 x vocab (the bound)."""
    types = 2 * p.vocab
    return {
        "per-type moments": types * (p.d + 3) * 8,
        "scatter": p.d * p.d * 8 + p.d * 8,
        "unit sum": p.d * 8 + 24,
        "unit sums and squares (dimensions)": 2 * p.d * 8 + 24,
        "ID sample": N_POINTS * p.d * 8,
        "dimensions sample": N_POINTS * p.d * 8,
        "massive": MASSIVE_BYTES,
        "linearity cross products": p.d * p.d * 8 + 2 * p.d * 8,
    }


def size(n: float) -> str:
    """Bytes as GB, or as kB below a megabyte."""
    return f"{n / GB:.3f} GB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def plan_rows(p: Plan) -> dict[str, str]:
    """Every planned quantity of one model, as formatted strings."""
    acc = sum(layer_bytes(p).values())
    weights = 2 * p.params  # bf16
    forward_mem = BATCH_TOKENS * p.hidden * p.d * 4 * 2  # kept float32 states and the model's own outputs
    budget = GPU_MEMORY_GB * GB - weights - forward_mem - 8 * GB  # 8 GB left for activations and the allocator
    per_pass = max(1, int(budget // acc))
    passes = math.ceil(p.hidden / per_pass)
    forward_s = 2 * p.params * p.tokens / (BF16_PEAK * FORWARD_UTILISATION)
    scatter_flop = SCATTER_FLOP * p.d * p.d * p.hidden * p.tokens
    scatter_s = scatter_flop / (FP64_PEAK * FP64_UTILISATION)
    store_bytes = p.tokens * p.hidden * p.d * 2  # float16 store
    write_s = store_bytes / (WRITE_GBPS * GB)
    samples = layer_bytes(p)["ID sample"] + layer_bytes(p)["dimensions sample"]
    partial = p.hidden * (acc - samples)  # per shard, without the samples
    fused_disk = p.tokens * TOKEN_TABLE_BYTES + p.shards * partial + p.hidden * samples / 2  # float32 on disk
    store_disk = store_bytes + p.tokens * TOKEN_TABLE_BYTES + p.shards * partial
    return {
        "hidden states x d": f"{p.hidden} x {p.d}",
        "tokens": f"{p.tokens:,.0f}",
        "forward FLOP (2 x params x tokens)": f"{2 * p.params * p.tokens:.3g}",
        "forward s (at 40% of 989 TFLOP/s)": f"{forward_s:,.0f}",
        f"float64 scatter FLOP ({SCATTER_FLOP} d^2 x layers x tokens)": f"{scatter_flop:.3g}",
        "scatter s (at 50% of 67 TFLOP/s)": f"{scatter_s:,.0f}",
        "accumulators per layer A (GB)": f"{acc / GB:.2f}",
        "all layers' accumulators (GB)": f"{p.hidden * acc / GB:.1f}",
        "budget = 80 GB - weights - forward - 8 GB (GB)": f"{budget / GB:.1f}",
        "layers per pass, passes": f"{min(per_pass, p.hidden)}, {passes}",
        "fused GPU-hours (passes x forward + scatter)": f"{(passes * forward_s + scatter_s) / 3600:.3f}",
        "store GPU-hours (forward + write at 2 GB/s)": f"{(forward_s + write_s) / 3600:.3f}",
        "store mode: CPU stream passes read (TB)": f"{STORE_READS * store_bytes / 1e12:.2f}",
        "jobs (token shards K)": f"{p.shards}",
        "fused disk (TB)": f"{fused_disk / 1e12:.3f}",
        "store disk (TB)": f"{store_disk / 1e12:.3f}",
        "memory per fused job on the GPU (GB)": (f"{(weights + forward_mem + min(per_pass, p.hidden) * acc) / GB:.1f}"),
        "layer_cka if set: every pair's cross products (GB)": f"{every_pair_bytes(p) / GB:.2f}",
        "layer_cka if set: float64 FLOP (2 d^2 x pairs x tokens)": f"{every_pair_bytes(p) / 4 * p.tokens:.3g}",
    }


def every_pair_bytes(p: Plan) -> float:
    """layer_cka's cross products of every pair of hidden states, L (L - 1) / 2 x d^2 x 8 bytes (config/README.md)."""
    return p.hidden * (p.hidden - 1) / 2 * p.d * p.d * 8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu-forward-s", type=float, default=21.83)
    parser.add_argument("--cpu-fused-s", type=float, default=37.68)
    parser.add_argument("--cpu-tokens", type=int, default=16384)
    args = parser.parse_args()
    rows = {p.name: plan_rows(p) for p in PLANS}
    print("| quantity | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for key in next(iter(rows.values())):
        print(f"| {key} | " + " | ".join(r[key] for r in rows.values()) + " |")
    for p in PLANS:
        print(f"\nPer layer, {p.name}: " + ", ".join(f"{k} {size(v)}" for k, v in layer_bytes(p).items()))
    smol = 2 * 134_515_008  # SmolLM2-135M forward FLOP per token
    rate = smol * args.cpu_tokens / args.cpu_forward_s
    print(
        f"\nMeasured here (bench_fused.py, SmolLM2-135M, 31 x 576, 2 CPU cores): forward "
        f"{1e3 * args.cpu_forward_s / args.cpu_tokens:.2f} ms/token = {rate / 1e9:.0f} GFLOP/s; fused "
        f"{1e3 * args.cpu_fused_s / args.cpu_tokens:.2f} ms/token. At that rate the forward alone of GPT-2 on "
        f"12M tokens takes {2 * PLANS[1].params * PLANS[1].tokens / rate / 3600:.1f} CPU-hours (2 cores) and of "
        f"Pythia-12B on 10M tokens {2 * PLANS[0].params * PLANS[0].tokens / rate / 3600:,.0f}."
    )


if __name__ == "__main__":
    main()
