r"""GPU check of the fused extraction: CUDA partials against CPU ones, the device accumulator tests on CUDA tensors,
and the time of a fused pass over the bare forward on a GPT-2-medium-sized random model.

Run on a CUDA machine (wheels from tools/device_wheels.sh in .whl/):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:src && PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py
Self-check without a GPU (CPU against CPU, a small timing model):
    PYTHONPATH=src .venv/bin/python benchmarks/gpu_check.py --device cpu --small
Prints Markdown; with $OUT set, also writes $OUT/gpu_check.md and the raw numbers to $OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import transformers
from bench_extract import bare_forward
from bench_fused import PLANS, fused_run

from layergeom.extraction.models import load_model
from layergeom.extraction.sequences import Sequences
from layergeom.extraction.sources import ModelSource
from layergeom.stats.protocol import SLOT

ROOT = Path(__file__).resolve().parent.parent
#: normwise relative tolerance (max |cuda - cpu| / max |cpu| of one array) by forward dtype and array dtype
TOLERANCE = {"float32": {"float64": 1e-4, "float32": 1e-4}, "float64": {"float64": 1e-9, "float32": 1e-6}}
#: counts of |x| per histogram bin: an entry within float32 rounding of a bin edge may fall on either side of it
#: when the forward is float32 (counts then move between neighbouring bins; each array's total still agrees)
BIN_COUNTS = ("AbsHistogram", "counts")


def save_random_model(root: Path, config: transformers.PretrainedConfig) -> Path:
    """A base model of ``config`` with seed-0 random weights and a word-level tokenizer (as tests/conftest.py
    builds them, no download), saved with save_pretrained."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = special + [f"t{i}" for i in range(config.vocab_size - len(special))]
    transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(root)
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(root)
    return root


def token_sequences(n: int, length: int, vocab: int, seed: int = 0) -> Sequences:
    """``n`` contexts of ``length`` token ids drawn with Zipf frequencies (as in text; posctx needs one length),
    two topics, the first token of each marked special."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, vocab + 1)
    ids = list(rng.choice(vocab, size=(n, length), p=p / p.sum()))
    return Sequences(
        seq_id=np.arange(n),
        doc_id=np.arange(n),
        topic=["a" if i % 2 else "b" for i in range(n)],
        ids=ids,
        special=[np.arange(len(x)) == 0 for x in ids],
    )


def partials(model: Path, device: str, dtype: str, seqs: Sequences, tmp: Path) -> dict[str, np.ndarray]:
    """Every array of every partial a fused run writes, by ``layer/accumulator/key``, with the ``kind`` of each
    accumulator under ``layer/accumulator/kind``."""
    loaded = load_model(ModelSource(str(model)), device=device, compute_dtype=dtype)
    if loaded.model.dtype != getattr(torch, dtype):
        raise RuntimeError(f"compute_dtype={dtype} gave a {loaded.model.dtype} model")
    tmp.mkdir()
    fused_run(loaded, seqs, tmp)
    arrays = {}
    for path in sorted((tmp / "parts").glob("layer_*.npz")):
        with np.load(path) as data:
            arrays.update({f"{path.stem}/{key}": data[key] for key in data.files if key != SLOT})
    return arrays


def compare(ref: dict[str, np.ndarray], other: dict[str, np.ndarray], dtype: str) -> list[dict]:
    """Per accumulator kind and state key: worst abs and normwise relative difference over layers, and whether
    integers agree exactly and floats within TOLERANCE."""
    if set(ref) != set(other):
        raise ValueError(f"different partial arrays: {sorted(set(ref) ^ set(other))[:5]}")
    rows: dict[tuple[str, str], dict] = {}
    for name, a in ref.items():
        accumulator, key = name.rsplit("/", 1)
        if key == "kind":
            continue
        kind, b = str(ref[f"{accumulator}/kind"]), other[name]
        same_shape = a.shape == b.shape
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64)) if same_shape and a.size else np.zeros(1)
        scale = np.abs(a).max() if a.size else 0.0
        row = rows.setdefault(
            (kind, key), {"kind": kind, "key": key, "dtype": str(a.dtype), "arrays": 0, "abs": 0.0, "rel": 0.0}
        )
        row["arrays"] += 1
        row["abs"] = max(row["abs"], float(diff.max()))
        row["rel"] = max(row["rel"], float(diff.max() / scale) if scale else float(diff.max()))
        row["shape_ok"] = row.get("shape_ok", True) and same_shape and (a.sum() == b.sum() or a.dtype.kind == "f")
    for row in rows.values():
        exact = not np.issubdtype(np.dtype(row["dtype"]), np.floating)
        row["tolerance"] = 0.0 if exact else TOLERANCE[dtype][row["dtype"]]
        if (row["kind"], row["key"]) == BIN_COUNTS and dtype == "float32":
            row["tolerance"] = 1e-3  # a few entries in a neighbouring bin, out of every entry of the layer
        row["pass"] = bool(row["shape_ok"] and row["rel"] <= row["tolerance"])
    return sorted(rows.values(), key=lambda r: (r["kind"], r["key"]))


def part_fused(device: str, tmp: Path, out: Callable[[str], None]) -> dict:
    """Fused partials of tiny GPT-2 and BERT models on ``device`` against CPU, in float32 and float64 forwards."""
    configs = {
        "gpt2": transformers.GPT2Config(
            vocab_size=512, n_embd=64, n_layer=3, n_head=4, n_positions=128, bos_token_id=2, eos_token_id=3
        ),
        "bert": transformers.BertConfig(
            vocab_size=512, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128
        ),
    }
    seqs = token_sequences(48, 64, 512)
    results = {}
    for name, config in configs.items():
        model = save_random_model(tmp / name, config)
        for dtype in ("float32", "float64"):
            runs = [partials(model, d, dtype, seqs, tmp / f"{name}-{dtype}-{i}") for i, d in enumerate(("cpu", device))]
            rows = compare(*runs, dtype)
            results[f"{name}/{dtype}"] = rows
            verdict = "PASS" if all(r["pass"] for r in rows) else "FAIL"
            results["pass"] = results.get("pass", True) and verdict == "PASS"
            out(
                f"\n**{name}, {dtype} forward (load_model compute_dtype={dtype}), {device} vs cpu: {verdict}** "
                f"({int(seqs.lengths().sum())} tokens, {config.num_hidden_layers} blocks, d = {config.hidden_size})\n"
            )
            out("| kind | key | dtype | arrays | max abs diff | max diff / max abs | tolerance | pass |")
            out("|---|---|---|---:|---:|---:|---:|---|")
            for r in rows:
                out(
                    f"| {r['kind']} | {r['key']} | {r['dtype']} | {r['arrays']} | {r['abs']:.3g} | {r['rel']:.3g} | "
                    f"{r['tolerance']:.0e} | {'yes' if r['pass'] else '**NO**'} |"
                )
    return results


def part_tests(device: str, out: Callable[[str], None]) -> dict:
    """tests/test_device_accumulators.py with its tensors on ``device``."""
    env = {**os.environ, "LAYERGEOM_TEST_DEVICE": device}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_device_accumulators.py"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = (done.stdout + done.stderr).strip().splitlines()[-30:]
    out(
        f"\n**LAYERGEOM_TEST_DEVICE={device} pytest tests/test_device_accumulators.py: "
        f"{'PASS' if done.returncode == 0 else 'FAIL'}** (rc {done.returncode})\n"
    )
    out("```\n" + "\n".join(tail) + "\n```")
    return {"pass": done.returncode == 0, "returncode": done.returncode, "tail": tail}


def part_timing(device: str, small: bool, tmp: Path, out: Callable[[str], None]) -> dict:
    """Bare forward against fused extraction with every analysis on, warm-up then 2 interleaved rounds."""
    size = dict(n_layer=2, n_embd=64, n_head=4) if small else dict(n_layer=24, n_embd=1024, n_head=16)
    config = transformers.GPT2Config(vocab_size=50257, n_positions=1024, **size)
    loaded = load_model(ModelSource(str(save_random_model(tmp / "timing", config))), device=device)
    n, length = (16, 64) if small else (256, 128)
    seqs = token_sequences(n, length, config.vocab_size)
    tokens = n * length
    cuda = device == "cuda"

    def timed(what: str) -> dict:
        """One bare or fused run: seconds, bytes written, peak GPU memory."""
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        if what == "bare":
            result = {"seconds": bare_forward(loaded, seqs)}
        else:
            with tempfile.TemporaryDirectory(dir=tmp) as run_dir:
                seconds, written = fused_run(loaded, seqs, Path(run_dir))
            result = {"seconds": seconds, "bytes": written}
        if cuda:
            torch.cuda.synchronize()
            result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return result

    warm = {what: timed(what) for what in ("bare", "fused")}
    rounds = [{what: timed(what) for what in ("bare", "fused")} for _ in range(2)]
    out(
        f"\nGPT-2 config n_layer={config.n_layer}, n_embd={config.n_embd}, n_head={config.n_head}, random weights, "
        f"{loaded.model.dtype}, on {device}; {n} sequences of {length} Zipf-drawn token ids ({tokens} tokens); "
        f"analyses {', '.join(PLANS)} (as config/config.yaml sets them); warm-up "
        f"(bare {warm['bare']['seconds']:.2f} s, fused {warm['fused']['seconds']:.2f} s), then 2 interleaved rounds.\n"
    )
    out("| round | bare s | bare tokens/s | fused s | fused tokens/s | fused / bare | fused bytes/token |")
    out("|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rounds, 1):
        bare, fused = r["bare"]["seconds"], r["fused"]["seconds"]
        out(
            f"| {i} | {bare:.3f} | {tokens / bare:,.0f} | {fused:.3f} | {tokens / fused:,.0f} | {fused / bare:.2f} | "
            f"{r['fused']['bytes'] / tokens:,.0f} |"
        )
    if cuda:
        peaks = {what: max(r[what]["peak_gib"] for r in rounds) for what in ("bare", "fused")}
        out(f"\nPeak GPU memory allocated: bare {peaks['bare']:.2f} GiB, fused {peaks['fused']:.2f} GiB.")
    return {"tokens": tokens, "warm_up": warm, "rounds": rounds}


def environment(device: str) -> dict:
    """Versions and the device's name."""
    return {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
    }


def write(lines: list[str], results: dict) -> None:
    """The report so far to $OUT/gpu_check.md and the raw numbers to $OUT/gpu_check.json, if OUT is set."""
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.md").write_text("\n".join(lines) + "\n")
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="compared against cpu")
    parser.add_argument("--small", action="store_true", help="a 2-layer, d=64 model for the timing")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    transformers.utils.logging.disable_progress_bar()
    lines: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    env = environment(args.device)
    out(f"# GPU check of the fused extraction ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    out(", ".join(f"{k}: {v}" for k, v in env.items()))
    results: dict = {"environment": env}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        parts = {
            "fused": ("1. Fused partials, {d} against cpu", lambda: part_fused(args.device, tmp, out)),
            "tests": ("2. Accumulator tests with {d} tensors", lambda: part_tests(args.device, out)),
            "timing": ("3. Fused against bare forward on {d}", lambda: part_timing(args.device, args.small, tmp, out)),
        }
        for key, (title, run) in parts.items():
            out(f"\n## {title.format(d=args.device)}")
            start = time.perf_counter()
            try:
                results[key] = run()
            except Exception:
                out("\n**FAILED**\n\n```\n" + traceback.format_exc() + "```")
                results[key] = {"error": traceback.format_exc()}
            results[f"{key}_seconds"] = time.perf_counter() - start
            out(f"\n({results[f'{key}_seconds']:.1f} s)")
            write(lines, results)  # after every part, so that a run cut short keeps what it did
    bad = [key for key in parts if "error" in results[key] or not results[key].get("pass", True)]
    out(f"\n**Overall: {'FAIL (' + ', '.join(bad) + ')' if bad else 'PASS'}**")
    write(lines, results)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
