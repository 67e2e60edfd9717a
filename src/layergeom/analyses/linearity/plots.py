"""The linearity figure: linearity scores and linear CKA of consecutive layers over depth, every model of a corpus."""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl

from layergeom.analyses.spec import FigureJob
from layergeom.plotting import plt, save, style_legend
from layergeom.stream.selection import describe

SCORES = {"linearity": "-", "linearity_residual": "--"}


def depth_figure(
    models: Sequence[str], tables: Sequence[str | os.PathLike], corpus: str, selection: dict, out: str | os.PathLike
) -> None:
    """Left: linearity of h_l -> h_next (solid) and of h_l -> h_next - h_l (dashed); right: linear CKA; a colour per
    model, against the relative depth of layer l."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, path) in enumerate(zip(models, tables)):
        table = pl.read_parquet(path).sort("layer")
        colour = colours[i % len(colours)]
        for column, style in SCORES.items():
            label = model if column == "linearity" else None
            axes[0].plot(table["relative_depth"], table[column], style, marker="o", ms=3, color=colour, label=label)
        axes[1].plot(table["relative_depth"], table["cka"], "-", marker="o", ms=3, color=colour, label=model)
    for ax, label in zip(axes, ("linearity score (1 = a linear map)", "linear CKA")):
        ax.set_xlabel("relative depth of layer l (pair l -> next stored layer)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7, title="model", title_fontsize=7)
    style_legend(
        fig,
        {"h_l -> h_next": "-", "h_l -> h_next - h_l (residual removed)": "--"},
        fontsize=8,
        loc="outside lower center",
        ncols=2,
    )
    fig.suptitle(f"Layer to layer — {corpus}: {describe(**selection)}")
    save(fig, out)


def corpus_figures(job: FigureJob) -> None:
    """The depth figure of every model on one corpus."""
    depth_figure(
        job.models, job.inputs["tables"], job.wildcards["corpus"], job.facts["selection"], job.outputs["depth"]
    )
