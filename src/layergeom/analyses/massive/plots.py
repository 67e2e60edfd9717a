"""The massive-activations figure: the largest and the median |x| over relative depth, every model of a corpus."""

from __future__ import annotations

import polars as pl

from layergeom.analyses.spec import FigureJob
from layergeom.findings.massive import MASSIVE_ABS
from layergeom.plotting import plt, save, style_legend
from layergeom.stream.selection import describe

STYLES = {"max |x|": "-", "median |x| (bin centre)": "--", f"|x| = {MASSIVE_ABS:g} (criterion)": ":"}


def depth_figure(job: FigureJob) -> None:
    """One line pair per model (colour) on a log y axis, with the criterion's magnitude as a dotted line."""
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for color, (model, path) in enumerate(zip(job.models, job.inputs["tables"])):
        table = pl.read_parquet(path)
        label = f"{model} ({table['kind'][0]})"
        for column, style in zip(("max_abs", "median_abs"), STYLES.values()):
            ax.plot(table["relative_depth"], table[column], style, marker="o", ms=3, color=f"C{color}", label=label)
            label = None
    ax.axhline(MASSIVE_ABS, color="k", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("relative depth (layer / number of blocks)")
    ax.set_ylabel("|x| of a hidden-state entry (log scale)")
    ax.legend(title="model (colour)", fontsize=8, loc="upper left")
    style_legend(ax, STYLES, fontsize=8, loc="lower right")
    fig.suptitle(f"{job.wildcards['corpus']}: {describe(**job.facts['selection'])}")
    save(fig, job.outputs["depth"])
