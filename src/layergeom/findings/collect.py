"""Read the tables the claims need, keyed by (model, corpus) or (family, corpus) and step, and judge them."""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl

from layergeom.findings import anisotropy, attention, norm_variance, posctx
from layergeom.findings.verdicts import Finding

Path = str | os.PathLike


def keyed(paths: Sequence[Path], keys: Sequence[Sequence[str]]) -> dict[tuple[str, str], pl.DataFrame]:
    """Tables by (model, corpus)."""
    return {(model, corpus): pl.read_parquet(path) for path, (model, corpus) in zip(paths, keys)}


def by_step(paths: Sequence[Path], keys: Sequence[Sequence]) -> dict[tuple[str, str], list[tuple[int, pl.DataFrame]]]:
    """Tables of checkpoints by (family, corpus), as (step, table) in step order."""
    out: dict[tuple[str, str], list[tuple[int, pl.DataFrame]]] = {}
    for path, (family, corpus, step) in zip(paths, keys):
        out.setdefault((family, corpus), []).append((int(step), pl.read_parquet(path)))
    return {key: sorted(values, key=lambda pair: pair[0]) for key, values in out.items()}


def all_findings(inputs: dict[str, Sequence[Path]], keys: dict[str, Sequence], tokens: dict[str, str]) -> list[Finding]:
    """Every claim on the tables of ``inputs`` (lists of paths) named by ``keys``; ``tokens`` per analysis."""
    drift = pl.read_parquet(inputs["drift"][0]) if inputs["drift"] else None
    return [
        *norm_variance.findings(keyed(inputs["norm_variance"], keys["norm_variance"]), tokens["norm_variance"]),
        *anisotropy.findings(
            keyed(inputs["anisotropy"], keys["anisotropy"]),
            by_step(inputs["anisotropy_training"], keys["anisotropy_training"]),
            tokens["anisotropy"],
            tokens["id_sample"],
        ),
        *attention.findings(by_step(inputs["attention"], keys["attention"]), drift, tokens["attention"]),
        *posctx.findings(keyed(inputs["posctx"], keys["posctx"]), tokens["posctx"]),
    ]
