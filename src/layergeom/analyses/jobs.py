"""The workflow's job entries that need the registry: a stream shard, a fused shard, a merge, a figure rule and
the findings, each resolving the analyses it serves by name."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import polars as pl

from layergeom.analyses.registry import ANALYSES, analysis
from layergeom.analyses.spec import Evidence, FigureJob, MergeJob
from layergeom.findings.page import write_pages
from layergeom.io.store import open_hidden, store_id
from layergeom.stats.protocol import check_slots
from layergeom.stream.job import stream_shard

Path = str | os.PathLike


def stream_feeds(plans: Mapping[str, dict]):
    """``feeds_of(token table)``: the feeds of every planned analysis, ``{name: selection}``."""
    return lambda tokens: [
        feed for name, selection in plans.items() for feed in analysis(name).feeds(tokens, selection)
    ]


def fused_feeds(plans: Mapping[str, dict]):
    """``feeds_of(token table)`` of a fused pass, ``{name: {selection, settings}}``: each analysis' stream feeds and
    what it also takes from the forward pass (there is no store to read later)."""

    def feeds_of(tokens: pl.DataFrame) -> list:
        feeds = []
        for name, plan in plans.items():
            spec = analysis(name)
            feeds += spec.feeds(tokens, plan["selection"])
            if spec.fused_feeds is not None:
                feeds += spec.fused_feeds(tokens, plan["selection"], plan["settings"])
        return feeds

    return feeds_of


def run_stream_shard(
    states: Path, tokens: Path, out_dir: Path, shard: str, plans: Mapping[str, dict], block_tokens: int | None = None
) -> None:
    """The stream rule: shard ``k-of-n`` of a store through the accumulators of every planned analysis."""
    stream_shard(states, tokens, out_dir, shard, stream_feeds(plans), block_tokens)


def run_fused_shard(
    spec: dict,
    model: str,
    documents: Path,
    sentences: Path,
    tokens: Path,
    header: Path,
    out_dir: Path,
    shard: str,
    plans: Mapping[str, dict],
    budget_gb: float | None,
    threads: int,
) -> None:
    """The fused_extract rule: shard ``k-of-n`` of a pair's forward pass into every planned analysis."""
    from layergeom.extraction.fused import run_fused_shard  # torch: only the jobs that run a model import it

    run_fused_shard(
        spec, model, documents, sentences, tokens, header, out_dir, shard, fused_feeds(plans), budget_gb, threads
    )


def run_merge(name: str, job: MergeJob) -> None:
    """The ``<analysis>_merge`` rule: every partial checked against its slot and the pair's store, then merged."""
    array = open_hidden(job.header)
    for layer in range(array.shape[0]):
        check_slots(job.parts, layer, store_id(array.attrs))
    analysis(name).merge(job)


def run_figures(name: str, key: str, per: str, job: FigureJob) -> None:
    """A figure rule ``<analysis>_<key>``: ``per`` is ``pair`` or ``corpus``."""
    spec = analysis(name)
    sets = spec.pair_figures if per == "pair" else spec.corpus_figures
    next(s for s in sets if s.key == key).draw(job)


def by_pair(paths: Sequence[Path], keys: Sequence[Sequence[str]]) -> dict[tuple[str, str], pl.DataFrame]:
    """Tables by (model, corpus)."""
    return {(model, corpus): pl.read_parquet(path) for path, (model, corpus) in zip(paths, keys)}


def by_step(paths: Sequence[Path], keys: Sequence[Sequence]) -> dict[tuple[str, str], list[tuple[int, pl.DataFrame]]]:
    """Tables of checkpoints by (family, corpus), as (step, table) in step order."""
    out: dict[tuple[str, str], list[tuple[int, pl.DataFrame]]] = {}
    for path, (family, corpus, step) in zip(paths, keys):
        out.setdefault((family, corpus), []).append((int(step), pl.read_parquet(path)))
    return {key: sorted(values, key=lambda pair: pair[0]) for key, values in out.items()}


def run_findings(
    inputs: Mapping[str, Sequence[Path]],
    keys: Mapping[str, Sequence],
    facts: Mapping[str, dict],
    intro: str,
    out: Mapping[str, Path],
) -> pl.DataFrame:
    """The findings rule: every registered analysis' claims judged on its depth and checkpoint tables."""
    drift = pl.read_parquet(inputs["drift"][0]) if inputs["drift"] else None
    findings, claims = [], []
    for name, spec in ANALYSES.items():
        if spec.findings is None:
            continue
        evidence = Evidence(
            depth=by_pair(inputs[f"{name}_depth"], keys[f"{name}_depth"]),
            training=by_step(inputs[f"{name}_training"], keys[f"{name}_training"]),
            tokens=facts[name]["tokens"],
            drift=drift,
            notes=facts[name],
        )
        findings += spec.findings(evidence)
        claims += spec.claims
    return write_pages(findings, claims, intro, out)
