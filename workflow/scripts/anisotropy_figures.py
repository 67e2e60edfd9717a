"""Anisotropy and intrinsic dimension over relative depth, all models of one corpus (rule anisotropy_figures)."""

import polars as pl

from layergeom.joblog import job_logging
from layergeom.plotting import line_style, plt, save
from layergeom.selection import describe


def label(table: pl.DataFrame) -> str:
    """Legend entry: model name, kind, and the init when untrained."""
    random = ", random init" if table["init"][0] == "random" else ""
    return f"{table['model'][0]} ({table['kind'][0]}{random})"


with job_logging(snakemake.log[0]):
    tables = [pl.read_parquet(path) for path in snakemake.input.tables]
    sel = snakemake.params.selection
    title = f"{snakemake.wildcards.corpus}: {describe(sel['include_special'], sel['exclude_first_position'])}"

    panels = [
        ("mean_cos", "mean pairwise cosine (uncentered)"),
        ("mean_cos_centered", "mean pairwise cosine (centered)"),
        ("sigma1_share", "top singular share sigma1^2 / sum sigma_i^2 (centered)"),
        ("eff_rank", "effective rank (centered)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    for color, table in enumerate(tables):
        for ax, (column, _) in zip(axes.flat, panels):
            ax.plot(table["relative_depth"], table[column], line_style(table["kind"][0]), marker="o", ms=3,
                    color=f"C{color}", label=label(table))
    for ax, (_, name) in zip(axes.flat, panels):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("relative depth (layer / number of blocks)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{title}; solid: decoders, dashed: encoders")
    save(fig, snakemake.output.anisotropy)

    settings = snakemake.params.settings
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, layout="constrained")
    for color, table in enumerate(tables):
        style = dict(color=f"C{color}", marker="o", ms=3, label=label(table))
        depth = table["relative_depth"]
        axes[0].plot(depth, table["twonn_id"], line_style(table["kind"][0]), **style)
        axes[0].fill_between(depth, table["twonn_lo"], table["twonn_hi"], color=f"C{color}", alpha=0.2, lw=0)
        axes[1].plot(depth, table["levina_bickel_id"], line_style(table["kind"][0]), **style)
    axes[0].set_title(f"TwoNN (discard {settings['discard_fraction']:g}, {settings['confidence']:.0%} bootstrap band)",
                      fontsize=10)
    axes[1].set_title(f"Levina-Bickel MLE (k = {settings['k_neighbors']})", fontsize=10)
    axes[0].set_ylabel("intrinsic dimension")
    for ax in axes:
        ax.set_xlabel("relative depth (layer / number of blocks)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}; {settings['sample']} {settings['n_points']} tokens")
    save(fig, snakemake.output.intrinsic_dimension)
