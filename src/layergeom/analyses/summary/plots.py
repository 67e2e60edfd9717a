"""Figures of the summary: mean norm and mean squared norm over relative depth, every model of a corpus."""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl

from layergeom.analyses.spec import FigureJob
from layergeom.plotting import plt, save
from layergeom.stream.selection import describe


def norms_figure(
    models: Sequence[str], tables: Sequence[str | os.PathLike], corpus: str, selection: dict, out: str | os.PathLike
) -> None:
    """Two panels (mean norm, mean squared norm, log scale) with one line per model."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for model, path in zip(models, tables):
        table = pl.read_parquet(path)
        axes[0].plot(table["relative_depth"], table["mean_norm"], marker="o", ms=3, label=model)
        axes[1].plot(table["relative_depth"], table["mean_sq_norm"], marker="o", ms=3, label=model)
    for ax, title in zip(axes, ("mean norm", "mean squared norm")):
        ax.set_yscale("log")
        ax.set_xlabel("relative depth (layer / number of blocks)")
        ax.set_title(title)
        ax.set_ylabel(f"{title} (log scale)")
        ax.legend()
    fig.suptitle(f"{corpus}: {describe(**selection)}")
    save(fig, out)


def corpus_figures(job: FigureJob) -> None:
    """The norms figure of every model on one corpus."""
    norms_figure(
        job.models, job.inputs["tables"], job.wildcards["corpus"], job.facts["selection"], job.outputs["norms"]
    )
