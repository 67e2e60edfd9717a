"""Rerun one extraction job N times and count the distinct hidden states it writes (docs/reliability.md).

    .venv/bin/python tools/forward_bits.py RUN_DIR MODEL CORPUS N [ENV=VALUE ...]

RUN_DIR is a workflow folder with its config.yaml (a finished run or a copy of one); each run deletes
results/hidden/MODEL/CORPUS, runs Snakemake for it on 2 cores with the given environment added, and hashes each
sequence's rows of the store. Prints each distinct result with its count and the sequences that differ from the
most common one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from layergeom.io.store import open_hidden, read_tokens  # noqa: E402


def sequence_digests(states: Path, tokens: Path) -> tuple[str, ...]:
    """md5 (first 8 hex digits) of each sequence's rows over every stored layer."""
    hidden = np.asarray(open_hidden(states)[:])
    seq_ids = read_tokens(tokens)["seq_id"].to_numpy()
    return tuple(hashlib.md5(hidden[:, seq_ids == s].tobytes()).hexdigest()[:8] for s in np.unique(seq_ids))


def extract_once(run_dir: Path, model: str, corpus: str, env: dict[str, str]) -> tuple[str, ...]:
    """Delete the pair's store, extract it again with Snakemake, and digest it."""
    hidden = run_dir / "results" / "hidden" / model / corpus
    shutil.rmtree(hidden, ignore_errors=True)
    target = f"results/hidden/{model}/{corpus}/tokens.parquet"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(run_dir)]
    cmd += ["--configfile", str(run_dir / "config.yaml"), "--cores", "2", target]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return sequence_digests(hidden / "states.zarr", hidden / "tokens.parquet")


def main(argv: list[str]) -> None:
    """Run the job N times and print the tally."""
    run_dir, model, corpus, n = Path(argv[0]).resolve(), argv[1], argv[2], int(argv[3])
    env = dict(item.split("=", 1) for item in argv[4:])
    tally = Counter(extract_once(run_dir, model, corpus, env) for _ in range(n))
    common = tally.most_common(1)[0][0]
    print(f"{len(tally)} distinct result(s) in {n} runs of {model}/{corpus} with {env or 'no added environment'}")
    for result, count in tally.most_common():
        differ = [i for i, (a, b) in enumerate(zip(result, common)) if a != b]
        print(f"  {count:3d} x {' '.join(result)}  sequences differing from the most common: {differ or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1:])
