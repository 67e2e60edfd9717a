"""Mean norm over relative depth for every model on one corpus (rule summary_figure)."""

import polars as pl

from layergeom.joblog import job_logging
from layergeom.plotting import plt, relative_depth, save
from layergeom.selection import describe

with job_logging(snakemake.log[0]):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for model, path in zip(snakemake.params.models, snakemake.input.tables):
        table = pl.read_parquet(path)
        depth = relative_depth(table["layer"].to_numpy(), table.height - 1)
        axes[0].plot(depth, table["mean_norm"], marker="o", ms=3, label=model)
        axes[1].plot(depth, table["mean_sq_norm"], marker="o", ms=3, label=model)
    for ax, title in zip(axes, ("mean norm", "mean squared norm")):
        ax.set_yscale("log")
        ax.set_xlabel("relative depth (layer / number of blocks)")
        ax.set_title(title)
        ax.legend()
    sel = snakemake.params.selection
    fig.suptitle(f"{snakemake.wildcards.corpus}: {describe(sel['include_special'], sel['exclude_first_position'])}")
    save(fig, snakemake.output.figure)
