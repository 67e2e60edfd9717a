"""Our streamed columns against the peers' own functions on a real run's store, every selected token in RAM.

Run after `make run` (store mode): .venv/bin/python tools/peer_check.py [--run results/hidden/minilm/bbc]
Compares `linearity` (by default of layers 1->2 and 3->4, `--pairs`) with LLM-Microscope's `procrustes_similarity`
and `isoscore` (layer 3, `--layer`) with `IsoScore.IsoScore`, on the tokens the default selection keeps (special
tokens out); prints one line each.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import torch
from IsoScore import IsoScore

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]
from peers import microscope_functions  # noqa: E402

from layergeom.io.store import open_hidden, read_tokens  # noqa: E402
from layergeom.stream.selection import token_mask  # noqa: E402

SELECTION = {"include_special": False, "exclude_first_position": False}  # config/config.yaml, selection


def states(run: Path, layer: int, rows: np.ndarray) -> np.ndarray:
    """The stored states of ``rows`` at ``layer``, float64."""
    return np.asarray(open_hidden(run / "states.zarr")[layer], dtype=np.float64)[rows]


def main() -> None:
    """Print ours against theirs for the pairs and the layer named in the module docstring."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=ROOT / "results/hidden/minilm/bbc")
    parser.add_argument("--pairs", type=int, nargs="+", default=[1, 3], help="first layers of the pairs")
    parser.add_argument("--layer", type=int, default=3, help="layer of the IsoScore comparison")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
    model, corpus = args.run.parts[-2:]
    results = args.run.parents[2]
    rows = np.flatnonzero(token_mask(read_tokens(args.run / "tokens.parquet"), **SELECTION))
    linearity = pl.read_parquet(results / "linearity" / model / corpus / "layers.parquet")
    functions = microscope_functions()
    for layer in args.pairs:
        ours = linearity.filter(pl.col("layer") == layer).row(0, named=True)
        x, y = (torch.from_numpy(states(args.run, at, rows)) for at in (layer, ours["next_layer"]))
        theirs = functions.procrustes_similarity(x, y)
        value = ours["linearity"]
        print(
            f"linearity {model}/{corpus} {layer}->{ours['next_layer']} ({len(rows)} tokens): ours {value:.10f}, "
            f"procrustes_similarity {theirs:.10f}, difference {value - theirs:.2e}"
        )
    dimensions = pl.read_parquet(results / "dimensions" / model / corpus / "layers.parquet")
    ours = dimensions.filter(pl.col("layer") == args.layer)["isoscore"][0]
    theirs = float(IsoScore.IsoScore(states(args.run, args.layer, rows)))
    print(
        f"isoscore {model}/{corpus} layer {args.layer}: ours {ours:.10f}, IsoScore.IsoScore {theirs:.10f}, "
        f"difference {ours - theirs:.2e}"
    )


if __name__ == "__main__":
    main()
