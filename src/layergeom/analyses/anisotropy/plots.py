"""Figures of anisotropy and intrinsic dimension over relative depth, every model of one corpus."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import polars as pl

from layergeom.analyses.anisotropy.metrics import random_baselines
from layergeom.analyses.spec import FigureJob
from layergeom.plotting import line_style, plt, save
from layergeom.stream.selection import describe

DEPTH = "relative depth (layer / number of blocks)"
PANELS = (  # column, title, y label
    ("mean_cos", "mean pairwise cosine (uncentered)", "mean cosine"),
    ("mean_cos_centered", "mean pairwise cosine (centered)", "mean cosine"),
    ("sigma1_share", "top singular share sigma1^2 / sum sigma_i^2 (centered)", "top singular share"),
    ("eff_rank", "effective rank (centered)", "effective rank"),
)


def label(table: pl.DataFrame) -> str:
    """Legend entry: model name, kind, and the init when untrained."""
    random = ", random init" if table["init"][0] == "random" else ""
    return f"{table['model'][0]} ({table['kind'][0]}{random})"


def anisotropy_figure(tables: Sequence[pl.DataFrame], title: str, out: str | os.PathLike) -> None:
    """Mean cosines, top singular share and effective rank: one panel each, one line per model."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    for color, table in enumerate(tables):
        for ax, (column, *_) in zip(axes.flat, PANELS):
            ax.plot(
                table["relative_depth"],
                table[column],
                line_style(table["kind"][0]),
                marker="o",
                ms=3,
                color=f"C{color}",
                label=label(table),
            )
    for ax, (_, name, ylabel) in zip(axes.flat, PANELS):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(DEPTH)
        ax.set_ylabel(ylabel)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"{title}; solid: decoders, dashed: encoders")
    save(fig, out)


def id_figure(tables: Sequence[pl.DataFrame], title: str, settings: Mapping, out: str | os.PathLike) -> None:
    """TwoNN and [SL]'s estimate with their bootstrap bands and Levina-Bickel, one line per model."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4), layout="constrained")
    for color, table in enumerate(tables):
        style = dict(color=f"C{color}", marker="o", ms=3, label=label(table))
        depth = table["relative_depth"]
        for ax, column, lo, hi in (
            (axes[0], "twonn_id", "twonn_lo", "twonn_hi"),
            (axes[1], "sl_id", "sl_id_lo", "sl_id_hi"),
        ):
            ax.plot(depth, table[column], line_style(table["kind"][0]), **style)
            ax.fill_between(depth, table[lo], table[hi], color=f"C{color}", alpha=0.2, lw=0)
        axes[2].plot(depth, table["levina_bickel_id"], line_style(table["kind"][0]), **style)
    axes[0].set_title(
        f"TwoNN (discard {settings['discard_fraction']:g}, {settings['confidence']:.0%} bootstrap band)", fontsize=10
    )
    axes[1].set_title(f"[SL]'s estimator (all tokens, smallest fifth; {settings['confidence']:.0%} band)", fontsize=10)
    axes[2].set_title(f"Levina-Bickel MLE (k = {settings['k_neighbors']})", fontsize=10)
    for ax in axes:
        ax.set_xlabel(DEPTH)
        ax.set_ylabel("intrinsic dimension")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}; {settings['sample']} {settings['n_points']} tokens")
    save(fig, out)


def depth_figures(
    tables: Sequence[str | os.PathLike],
    corpus: str,
    selection: dict,
    settings: Mapping,
    out: Mapping[str, str | os.PathLike],
) -> None:
    """The anisotropy and intrinsic-dimension figures of one corpus."""
    frames = [pl.read_parquet(path) for path in tables]
    title = f"{corpus}: {describe(**selection)}"
    anisotropy_figure(frames, title, out["anisotropy"])
    id_figure(frames, title, settings, out["intrinsic_dimension"])


def random_figure(tables: Sequence[str | os.PathLike], corpus: str, selection: dict, out: str | os.PathLike) -> None:
    """Each trained model beside its random-init twin of the same source and revision."""
    frames = {t["model"][0]: t for t in (pl.read_parquet(path) for path in tables)}
    pairs = random_baselines([(m, t["model_source"][0], t["revision"][0], t["init"][0]) for m, t in frames.items()])
    if not pairs:
        raise ValueError("no model with init 'random' has a pretrained twin of the same source and revision")
    columns = [
        ("mean_cos", "mean pairwise cosine (uncentered)"),
        ("sigma1_share", "top singular share (centered)"),
        ("twonn_id", "TwoNN intrinsic dimension"),
    ]
    fig, axes = plt.subplots(len(pairs), 3, figsize=(13, 3.6 * len(pairs)), squeeze=False, layout="constrained")
    for row, (trained, untrained) in zip(axes, pairs):
        for ax, (column, name) in zip(row, columns):
            for model, style, color in ((trained, "-", "C0"), (untrained, "--", "C1")):
                table = frames[model]
                ax.plot(
                    table["relative_depth"],
                    table[column],
                    style,
                    color=color,
                    marker="o",
                    ms=3,
                    label=f"{model} ({table['init'][0]})",
                )
                if column == "twonn_id":
                    ax.fill_between(
                        table["relative_depth"], table["twonn_lo"], table["twonn_hi"], color=color, alpha=0.2, lw=0
                    )
            ax.set_title(f"{trained}: {name}", fontsize=10)
            ax.set_xlabel(DEPTH)
            ax.set_ylabel(name)
        row[0].legend(fontsize=8)
    fig.suptitle(f"{corpus}: {describe(**selection)}")
    save(fig, out)


def corpus_figures(job: FigureJob) -> None:
    """The anisotropy and intrinsic-dimension figures of every model on one corpus."""
    depth_figures(
        job.inputs["tables"], job.wildcards["corpus"], job.facts["selection"], job.facts["settings"], job.outputs
    )


def random_figures(job: FigureJob) -> None:
    """Trained models against their untrained (random-init) twins on one corpus."""
    random_figure(job.inputs["tables"], job.wildcards["corpus"], job.facts["selection"], job.outputs["figure"])
