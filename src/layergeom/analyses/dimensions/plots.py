"""Figures of the dimensions analysis, every model of a corpus over relative depth: the shares of the mean cosine
carried by the top dimensions (one panel per model), and the mean cosine raw and standardized with IsoScore."""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl

from layergeom.analyses.dimensions.metrics import SHARES
from layergeom.analyses.spec import FigureJob
from layergeom.plotting import plt, save
from layergeom.stream.selection import describe

DEPTH = "relative depth (layer / number of blocks)"
SHARE_STYLES = {1: ("-", "o"), 3: ("--", "s"), 10: (":", "^")}
ISOTROPY = (
    ("mean_cos", "mean cosine (raw)"),
    ("mean_cos_standardized", "mean cosine (standardized)"),
    ("isoscore", "IsoScore"),
)


def shares_figure(
    models: Sequence[str], tables: Sequence[str | os.PathLike], corpus: str, selection: dict, out: str | os.PathLike
) -> None:
    """One panel per model: top1/top3/top10_share over depth, one line style each, the 0.5 rule dotted."""
    fig, axes = plt.subplots(
        1, len(models), figsize=(4 * len(models), 3.8), squeeze=False, sharey=True, layout="constrained"
    )
    for ax, model, path in zip(axes[0], models, tables):
        table = pl.read_parquet(path)
        for k in SHARES:
            style, marker = SHARE_STYLES[k]
            ax.plot(table["relative_depth"], table[f"top{k}_share"], style, marker=marker, ms=3, label=f"top {k}")
        ax.axhline(0.5, color="grey", lw=0.8, ls="-.", label="0.5 (claim rule)")
        ax.set_title(model)
        ax.set_xlabel(DEPTH)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("share of mean cosine")
    fig.suptitle(f"{corpus}: top dimensions' share of the mean cosine ({describe(**selection)})")
    save(fig, out)


def isotropy_figure(
    models: Sequence[str], tables: Sequence[str | os.PathLike], corpus: str, selection: dict, out: str | os.PathLike
) -> None:
    """Three panels (raw and standardized mean cosine, IsoScore), one line per model."""
    fig, axes = plt.subplots(1, len(ISOTROPY), figsize=(13, 3.8), layout="constrained")
    for model, path in zip(models, tables):
        table = pl.read_parquet(path)
        for ax, (column, _) in zip(axes, ISOTROPY):
            ax.plot(table["relative_depth"], table[column], marker="o", ms=3, label=model)
    for ax, (_, label) in zip(axes, ISOTROPY):
        ax.set_xlabel(DEPTH)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"{corpus}: {describe(**selection)}")
    save(fig, out)


def corpus_figures(job: FigureJob) -> None:
    """Both figures of every model on one corpus."""
    args = (job.models, job.inputs["tables"], job.wildcards["corpus"], job.facts["selection"])
    shares_figure(*args, job.outputs["shares"])
    isotropy_figure(*args, job.outputs["isotropy"])
