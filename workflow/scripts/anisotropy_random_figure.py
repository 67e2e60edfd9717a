"""Each trained model beside its random-init twin of the same source and revision (rule anisotropy_random_figure)."""

import polars as pl

from layergeom.anisotropy import random_baselines
from layergeom.joblog import job_logging
from layergeom.plotting import plt, save
from layergeom.selection import describe

with job_logging(snakemake.log[0]):
    tables = {t["model"][0]: t for t in (pl.read_parquet(path) for path in snakemake.input.tables)}
    pairs = random_baselines([(m, t["model_source"][0], t["revision"][0], t["init"][0]) for m, t in tables.items()])
    if not pairs:
        raise ValueError("no model with init 'random' has a pretrained twin of the same source and revision")
    columns = [("mean_cos", "mean pairwise cosine (uncentered)"),
               ("sigma1_share", "top singular share (centered)"),
               ("twonn_id", "TwoNN intrinsic dimension")]
    fig, axes = plt.subplots(len(pairs), 3, figsize=(13, 3.6 * len(pairs)), squeeze=False, layout="constrained")
    for row, (trained, untrained) in zip(axes, pairs):
        for ax, (column, name) in zip(row, columns):
            for model, style, color in ((trained, "-", "C0"), (untrained, "--", "C1")):
                table = tables[model]
                ax.plot(table["relative_depth"], table[column], style, color=color, marker="o", ms=3,
                        label=f"{model} ({table['init'][0]})")
                if column == "twonn_id":
                    ax.fill_between(table["relative_depth"], table["twonn_lo"], table["twonn_hi"], color=color,
                                    alpha=0.2, lw=0)
            ax.set_title(f"{trained}: {name}", fontsize=10)
            ax.set_xlabel("relative depth (layer / number of blocks)")
        row[0].legend(fontsize=8)
    sel = snakemake.params.selection
    fig.suptitle(f"{snakemake.wildcards.corpus}: {describe(sel['include_special'], sel['exclude_first_position'])}")
    save(fig, snakemake.output.figure)
