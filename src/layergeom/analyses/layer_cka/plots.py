"""The layer_cka figure: a heatmap of linear CKA between every pair of stored layers, a panel per model of a
corpus."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import polars as pl

from layergeom.analyses.spec import FigureJob
from layergeom.plotting import plt, save
from layergeom.stream.selection import describe


def cka_grid(table: pl.DataFrame) -> tuple[np.ndarray, list[int]]:
    """The symmetric (L, L) CKA matrix of a pair table, 1 on the diagonal, and the stored layers' indices."""
    layers = sorted(set(table["layer"]) | set(table["other_layer"]))
    index = {layer: i for i, layer in enumerate(layers)}
    grid = np.eye(len(layers))
    for layer, other, cka in table.select("layer", "other_layer", "cka").iter_rows():
        grid[index[layer], index[other]] = grid[index[other], index[layer]] = cka
    return grid, layers


def heatmap_figure(
    models: Sequence[str], tables: Sequence[str | os.PathLike], corpus: str, selection: dict, out: str | os.PathLike
) -> None:
    """One heatmap per model: linear CKA of stored layers l (rows) and m (columns), 0 (white) to 1 (dark)."""
    columns = min(len(models), 3)
    rows = math.ceil(len(models) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.9 * rows), layout="constrained", squeeze=False)
    for ax, model, path in zip(axes.flat, models, tables):
        grid, layers = cka_grid(pl.read_parquet(path))
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", origin="lower")
        ticks = np.unique(np.linspace(0, len(layers) - 1, min(len(layers), 8)).round().astype(int))
        ax.set_xticks(ticks, [layers[t] for t in ticks])
        ax.set_yticks(ticks, [layers[t] for t in ticks])
        ax.set_xlabel("layer m")
        ax.set_ylabel("layer l")
        ax.set_title(model, fontsize=9)
    for ax in axes.flat[len(models) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, shrink=0.8, label="linear CKA of h_l and h_m")
    fig.suptitle(f"Every layer pair — {corpus}: {describe(**selection)}")
    save(fig, out)


def corpus_figures(job: FigureJob) -> None:
    """The heatmap of every model on one corpus."""
    heatmap_figure(
        job.models, job.inputs["tables"], job.wildcards["corpus"], job.facts["selection"], job.outputs["heatmap"]
    )
