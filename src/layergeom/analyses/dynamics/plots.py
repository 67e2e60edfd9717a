"""Figures of training dynamics: loss curve, per-layer measures against checkpoint step, the drift experiment."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from layergeom.plotting import layer_colours, plt, save, style_legend


def _step_axis(ax, label: str = "training step") -> None:
    """A log step axis that still shows step 0 (linear between 0 and 1)."""
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel(label)


def loss_figure(table: pl.DataFrame, run: str) -> Figure:
    """Training batch loss and held-out loss against step, checkpoints marked."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    batches = table.filter(pl.col("loss").is_not_null())
    ax.plot(batches["step"], batches["loss"], lw=0.8, color="0.5", label="training batch")
    held = table.filter(pl.col("eval_loss").is_not_null())
    if held.height:
        ax.plot(held["step"], held["eval_loss"], "o-", ms=4, color="C3", label="held-out (at checkpoints)")
    for step in table.filter(pl.col("checkpoint"))["step"]:
        ax.axvline(step, color="0.85", lw=0.6, zorder=0)
    _step_axis(ax)
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(f"training run {run}: loss (vertical lines: saved checkpoints)")
    ax.legend()
    return fig


def per_layer_over_steps(table: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, layers and the (layers, steps) matrix of ``column`` averaged over heads when there are heads."""
    means = table.group_by("step", "layer").agg(pl.col(column).mean()).sort("layer", "step")
    steps = np.unique(means["step"].to_numpy())
    layers = np.unique(means["layer"].to_numpy())
    values = np.full((len(layers), len(steps)), np.nan)
    at = np.searchsorted(layers, means["layer"].to_numpy()), np.searchsorted(steps, means["step"].to_numpy())
    values[at] = means[column].to_numpy()
    return steps, layers, values


def over_training(tables: Sequence[tuple[int, pl.DataFrame]], columns: Sequence[str], title: str) -> Figure:
    """One panel per column: the value of every layer (one colour per layer) against checkpoint step.

    Tables with a ``head`` column are averaged over heads (thick lines) and each head is drawn thin.
    """
    table = pl.concat(
        [t.with_columns(pl.lit(step, dtype=pl.Int64).alias("step")) for step, t in tables], how="diagonal_relaxed"
    )
    n = len(columns)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols + 1, 3.3 * rows + 0.6), layout="constrained", squeeze=False
    )
    colours = layer_colours(fig, axes, table["layer"].unique().to_list())
    for ax, column in zip(axes.flat, columns):
        if "head" in table.columns:
            for (layer, _head), part in table.sort("step").group_by("layer", "head", maintain_order=True):
                ax.plot(part["step"], part[column], lw=0.4, alpha=0.35, color=colours[layer])
        steps, layers, values = per_layer_over_steps(table, column)
        for layer, line in zip(layers, values):
            ax.plot(steps, line, "o-", ms=3, lw=1.5, color=colours[int(layer)])
        _step_axis(ax)
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() > 0 and finite.max() > 50 * finite.min():
            ax.set_yscale("log")
        ax.set_ylabel(column)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if "head" in table.columns:
        title += "\nthin lines: each head, thick lines with dots: mean over heads"
    fig.suptitle(title, fontsize=10)
    return fig


def drift_figure(table: pl.DataFrame) -> Figure:
    """Output mean cosine, attention entropy and largest weight against drift N, one line per block type and depth."""
    panels = [  # column, its dotted reference column, y label, legend of the solid and dotted lines
        ("mean_cos", "input_mean_cos", "mean pairwise cosine", ("block outputs", "block inputs")),
        ("mean_entropy", "uniform_entropy", "mean attention entropy (nats)", ("attention rows", "uniform attention")),
        ("mean_max_weight", None, "mean largest attention weight", None),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    positive = table.filter(pl.col("drift") > 0)["drift"]
    summary = (
        table.group_by("block_type", "block", "drift")
        .agg(
            pl.col("mean_cos", "input_mean_cos", "mean_entropy", "uniform_entropy", "mean_max_weight").mean(),
            *(pl.col(c).min().alias(f"{c}_min") for c in ("mean_cos", "mean_entropy", "mean_max_weight")),
            *(pl.col(c).max().alias(f"{c}_max") for c in ("mean_cos", "mean_entropy", "mean_max_weight")),
        )
        .sort("block_type", "block", "drift")
    )
    kinds = list(dict.fromkeys(summary["block_type"]))
    for ax, (column, reference, name, _) in zip(axes, panels):
        for k, kind in enumerate(kinds):
            for (block,), part in summary.filter(pl.col("block_type") == kind).group_by("block", maintain_order=True):
                style = dict(color=f"C{k}", alpha=1.0 if block == 1 else 0.55, marker="o" if block == 1 else "s", ms=3)
                ax.plot(part["drift"], part[column], label=f"{kind} block {block}", **style)
                ax.fill_between(part["drift"], part[f"{column}_min"], part[f"{column}_max"], color=f"C{k}", alpha=0.12)
                if reference:
                    ax.plot(part["drift"], part[reference], ":", color=f"C{k}", alpha=style["alpha"])
        ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0, linscale=0.5)
        ax.set_xlim(left=0)
        ax.set_xlabel("drift norm N (inputs x_i + N b, ||x_i|| about 1)")
        ax.set_ylabel(name)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=len(labels))
    for ax, (*_, styles) in zip(axes, panels):
        if styles:
            style_legend(ax, dict(zip(styles, ("-", ":"))), fontsize=8)
    n_rep = table["repeat"].n_unique()
    fig.suptitle(f"untrained blocks: mean over {n_rep} seeds, band = min to max", fontsize=10)
    return fig


def training_figure(
    steps: Sequence[int],
    tables: Sequence[str | os.PathLike],
    where: dict,
    columns: Sequence[str],
    title: str,
    out: str | os.PathLike,
) -> None:
    """One per-layer measure of every checkpoint of a model against its training step."""
    frames = [(step, pl.read_parquet(path).filter(**where)) for step, path in zip(steps, tables)]
    save(over_training(frames, list(columns), title), out)
