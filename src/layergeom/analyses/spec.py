"""The declaration of an analysis: everything the workflow needs to run it, in one object (``ANALYSIS`` of its
folder's ``__init__.py``, listed once in ``analyses/registry.py``)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from layergeom.findings.verdicts import Claim, Finding

Path = str | os.PathLike


@dataclass(frozen=True)
class MergeJob:
    """What a merge reads and writes: the pair's header or store, token table and stream partials."""

    header: Path
    tokens: Path
    parts: Sequence[Path]
    outputs: Mapping[str, Path]
    settings: Mapping[str, Any]
    selection: Mapping[str, bool]


@dataclass(frozen=True)
class FigureJob:
    """What a figure rule draws from: its input files by name, the models, and the analysis' figure facts."""

    inputs: Mapping[str, Sequence[Path] | Path]
    outputs: Mapping[str, Path]
    wildcards: Mapping[str, str]
    models: Sequence[str]
    facts: Mapping[str, Any]


@dataclass(frozen=True)
class Evidence:
    """What the claims of an analysis are judged on: its depth tables by (model, corpus), its tables of every
    checkpoint by (family, corpus) as (step, table), the tokens they cover, and the drift experiment's table."""

    depth: Mapping[tuple[str, str], pl.DataFrame]
    training: Mapping[tuple[str, str], list[tuple[int, pl.DataFrame]]]
    tokens: str
    drift: pl.DataFrame | None = None
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    """One figure of a figure rule: its output name, file (no ``.png``), report caption
    (``workflow/report/<caption>.rst``) and label."""

    key: str
    file: str
    caption: str
    label: str


@dataclass(frozen=True)
class FigureSet:
    """A figure rule: per (model, corpus) pair (from the merge's outputs) or per corpus (from every model's table).

    ``key`` names the rule (``<analysis>_<key>``); ``when(config, corpus)`` limits the corpora it draws."""

    key: str
    draw: Callable[[FigureJob], None]
    figures: tuple[Figure, ...]
    when: Callable[[dict, str], bool] | None = None


@dataclass(frozen=True)
class Analysis:
    """One analysis: its name (config section, results and figure folders, table and report category), what
    it streams, how its partials merge into tables, its figures, training measures and claims."""

    name: str
    what: str  # what its per-layer table holds (the cross-model table's caption)
    table: str = "layers.parquet"  # its per-(model, corpus) layer table under results/<name>/{model}/{corpus}/
    covers: Callable[[dict, str, str], bool] | None = None  # (config, model, corpus) -> covered; None: every pair
    feeds: Callable[..., list] | None = None  # (tokens, selection, settings) -> [Feed]: a streamed analysis
    fused_feeds: Callable[..., list] | None = None  # what it also takes from a fused pass (there is no store)
    kinds: tuple[type, ...] = ()  # the accumulator kinds of its partials
    merge: Callable[[MergeJob], None] | None = None  # the stream partials of a pair -> ``outputs``
    outputs: Mapping[str, str] = field(default_factory=dict)  # merge outputs: name -> file (``.zarr``: a folder)
    temporary: bool = False  # its merge outputs feed its own later rules only (they are deleted after)
    settings: tuple[str, ...] = ()  # keys of its config section that its merge depends on
    facts: Callable[[dict, dict], dict] | None = None  # (config, selection) -> what its figures, captions state
    pair_figures: tuple[FigureSet, ...] = ()
    corpus_figures: tuple[FigureSet, ...] = ()
    training: tuple[str, ...] = ()  # columns of its table drawn against the training step
    training_where: Mapping[str, Any] = field(default_factory=dict)  # rows of its table those figures take
    claims: tuple[Claim, ...] = ()
    findings: Callable[[Evidence], list[Finding]] | None = None

    @property
    def streamed(self) -> bool:
        """Whether the stream shards (or a fused extraction) feed it."""
        return self.feeds is not None


def drawn_by(module: str, function: str) -> Callable[[FigureJob], None]:
    """The figure function ``function`` of ``module``, imported when it draws: jobs that draw nothing then do not
    import matplotlib (a third of a second each)."""

    def draw(job: FigureJob) -> None:
        getattr(importlib.import_module(module), function)(job)

    return draw


def depth_claims(findings: Callable[[dict, str], list]) -> Callable[[Evidence], list]:
    """The judge of an analysis whose claims read only its depth tables: ``findings(tables, tokens)``."""
    return lambda evidence: findings(dict(evidence.depth), evidence.tokens)
