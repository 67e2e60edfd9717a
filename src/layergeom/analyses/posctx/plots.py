"""Figures of the position/context decomposition: per-layer panels of one store, and layers across models."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from layergeom.analyses.posctx.components import read_components
from layergeom.analyses.posctx.metrics import normalized_gram, project_top, topic_codes, unit_rows
from layergeom.analyses.spec import FigureJob
from layergeom.io.store import after_final_norm
from layergeom.plotting import panel_grid, plt, save, shown_layers, spread_layers, style_legend


def _layer_panels(names: Sequence[str], projection: str | None = None) -> tuple[Figure, list, list[int]]:
    """A panel per shown layer (``spread_layers``), titled by layer name; returns the layers' indices too."""
    shown = spread_layers(len(names))
    fig, axes = panel_grid(len(shown), projection=projection)
    for ax, i in zip(axes, shown):
        ax.set_title(names[i], fontsize=9)
    return fig, axes, shown


def _title(fig: Figure, what: str, attrs: Mapping, shown: int, total: int) -> None:
    """Model, corpus, the final-norm note, what is drawn and which layers."""
    blocks = attrs.get("n_layers") or 0
    stored = attrs.get("layers") or range(blocks + 1)
    normed = after_final_norm(stored, blocks, attrs.get("last_layer_after_final_norm", False)).any()
    final = f", layer {blocks} after the final norm" if normed else ""
    fig.suptitle(
        f"{attrs.get('model')} on {attrs.get('corpus')}{final}\n{what}\n({shown_layers(shown, total)})", fontsize=10
    )


def pos_pca(pos: np.ndarray, positions: np.ndarray, names: Sequence[str], attrs: Mapping, dims: int) -> Figure:
    """pos_t on its top 2 or 3 principal directions, coloured by position, a panel per shown layer."""
    fig, axes, shown = _layer_panels(names, projection="3d" if dims == 3 else None)
    for ax, i in zip(axes, shown):
        coords = project_top(pos[i], dims)
        coords = np.pad(coords, ((0, 0), (0, dims - coords.shape[1])))
        points = ax.scatter(*coords.T, c=positions, cmap="viridis", s=8)
        ax.plot(*coords.T, color="0.7", lw=0.5, zorder=0)
        ax.set_xlabel("PC1", fontsize=8)
        ax.set_ylabel("PC2", fontsize=8)
        if dims == 3:
            ax.set_zlabel("PC3", fontsize=8)
    fig.colorbar(points, ax=axes, shrink=0.6, label="position")
    _title(fig, f"position vectors on their top {dims} principal directions", attrs, len(shown), len(names))
    return fig


def _heatmaps(
    mats: Sequence[np.ndarray], axes: Sequence, vmax: float, labels: tuple[str, str], extent: tuple | None = None
) -> None:
    """One cosine matrix per axes on a shared diverging scale, axes labelled (x, y)."""
    for ax, mat in zip(axes, mats):
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest", extent=extent)
        ax.set_xlabel(labels[0], fontsize=8)
        ax.set_ylabel(labels[1], fontsize=8)
    ax.figure.colorbar(image, ax=list(axes), shrink=0.6, label="cosine")


def pos_gram(pos: np.ndarray, positions: np.ndarray, names: Sequence[str], attrs: Mapping) -> Figure:
    """Cosine Gram matrix of the position vectors, a panel per shown layer."""
    extent = (positions[0] - 0.5, positions[-1] + 0.5, positions[-1] + 0.5, positions[0] - 0.5)
    fig, axes, shown = _layer_panels(names)
    _heatmaps([normalized_gram(pos[i]) for i in shown], axes, 1.0, ("position", "position"), extent)
    _title(fig, "cosine Gram matrix of the position vectors", attrs, len(shown), len(names))
    return fig


def ctx_cosines(ctx: np.ndarray, topics: Sequence[str | None], names: Sequence[str], attrs: Mapping) -> Figure:
    """Cosines between context vectors, contexts sorted by topic, a panel per shown layer."""
    codes, labels = topic_codes(topics)
    order = np.argsort(codes, kind="stable")
    edges = np.flatnonzero(np.diff(codes[order])) + 0.5
    fig, axes, shown = _layer_panels(names)
    units = [unit_rows(ctx[i][order]) for i in shown]
    _heatmaps([u @ u.T for u in units], axes, 1.0, ("context (by topic)", "context (by topic)"))
    for ax in axes:
        for edge in edges:
            ax.axhline(edge, color="k", lw=0.5)
            ax.axvline(edge, color="k", lw=0.5)
    groups = ", ".join(labels) if labels else "no topics"
    _title(fig, f"cosines between context vectors, sorted by topic ({groups})", attrs, len(shown), len(names))
    return fig


def pos_ctx_cosines(
    pos: np.ndarray, ctx: np.ndarray, positions: np.ndarray, names: Sequence[str], attrs: Mapping
) -> Figure:
    """Cosines between every position vector (rows) and context vector (columns), a panel per shown layer."""
    fig, axes, shown = _layer_panels(names)
    mats = [unit_rows(pos[i]) @ unit_rows(ctx[i]).T for i in shown]
    vmax = max(float(np.abs(m).max()) for m in mats) or 1.0
    extent = (-0.5, ctx.shape[1] - 0.5, positions[-1] + 0.5, positions[0] - 0.5)
    _heatmaps(mats, axes, vmax, ("context", "position"), extent)
    for ax in axes:
        ax.set_aspect("auto")
    _title(fig, "cosines between position (rows) and context (columns) vectors", attrs, len(shown), len(names))
    return fig


class Panel(NamedTuple):
    """A panel of the layer overview: title, y label and its (column, line style, legend label) series."""

    title: str
    ylabel: str
    series: tuple[tuple[str, str, str], ...]


PANELS = (
    Panel(
        "variance shares",
        "share of centered sum of squares",
        (("pos_share", "-", "pos"), ("ctx_share", "--", "ctx"), ("resid_share", ":", "resid")),
    ),
    Panel("pos stable rank", "stable rank", (("pos_stable_rank", "-", "pos"),)),
    Panel("pos ScreeNOT rank", "rank r", (("pos_screenot_rank", "-", "pos"),)),
    Panel("pos explained ratio", "top-r singular value share", (("pos_explained_ratio", "-", "pos"),)),
    Panel(
        "pos relative operator norm",
        "||pos|| / ||reference||",
        (
            ("pos_rel_norm", "-", "vs pos + ctx"),
            ("pos_rel_norm_total", "--", "vs centered states"),
            ("pos_rel_norm_hidden", ":", "vs hidden states"),
        ),
    ),
    Panel("pos top-2 energy share", "share of squared singular values", (("pos_top2_share", "-", "pos"),)),
    Panel("smoothness of the pos Gram", "low-frequency DCT share", (("smoothness_lowfreq", "-", "pos"),)),
    Panel(
        "ctx |cos|, projected",
        "mean |cosine|",
        (("ctx_within_cos", "-", "within topics"), ("ctx_across_cos", "--", "across topics")),
    ),
    Panel(
        "ctx |cos|, raw",
        "mean |cosine|",
        (("ctx_within_cos_raw", "-", "within topics"), ("ctx_across_cos_raw", "--", "across topics")),
    ),
    Panel(
        "pos-ctx incoherence",
        "|cosine|",
        (("incoherence_max", "-", "max"), ("incoherence_mean", "--", "mean"), ("random_baseline", ":", "random max")),
    ),
)


def layers_overview(tables: Mapping[str, pl.DataFrame], corpus: str) -> Figure:
    """The layers.parquet quantities of every model over relative depth; colour = model, line style = series."""
    fig, axes = panel_grid(len(PANELS), size=3.2)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, table in enumerate(tables.values()):
        depth = table["relative_depth"].to_numpy()
        for ax, panel in zip(axes, PANELS):
            for column, style, _ in panel.series:
                values = table[column].cast(pl.Float64).to_numpy()
                ax.plot(depth, values, style, color=colours[i % len(colours)], marker=".", ms=3)
    for ax, panel in zip(axes, PANELS):
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel("relative depth", fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        if len(panel.series) > 1:
            style_legend(ax, {label: style for _, style, label in panel.series}, fontsize=7)
    models = [Line2D([], [], color=colours[i % len(colours)], marker=".") for i in range(len(tables))]
    fig.legend(models, list(tables), loc="outside lower center", ncols=min(len(tables), 6), fontsize=8)
    fig.suptitle(f"position and context decomposition on {corpus}; colour: model, line style: see each panel")
    return fig


def model_figures(components: str | os.PathLike, out: Mapping[str, str | os.PathLike]) -> None:
    """The per-layer figures of one store's position and context components."""
    comp = read_components(components)
    pos, ctx, attrs, positions = comp["pos"], comp["ctx"], comp["attrs"], comp["positions"]
    names = attrs["layer_names"]
    save(pos_pca(pos, positions, names, attrs, dims=2), out["pca2"])
    save(pos_pca(pos, positions, names, attrs, dims=3), out["pca3"])
    save(pos_gram(pos, positions, names, attrs), out["gram"])
    save(ctx_cosines(ctx, comp["topics"], names, attrs), out["ctx_cos"])
    save(pos_ctx_cosines(pos, ctx, positions, names, attrs), out["pos_ctx_cos"])


def corpus_figure(
    models: Sequence[str], tables: Sequence[str | os.PathLike], corpus: str, out: str | os.PathLike
) -> None:
    """The posctx table's quantities over relative depth for every model on one corpus."""
    save(layers_overview({m: pl.read_parquet(p) for m, p in zip(models, tables)}, corpus), out)


def pair_figures(job: FigureJob) -> None:
    """The per-layer figures of one store's position and context components."""
    model_figures(job.inputs["components"], job.outputs)


def corpus_figures(job: FigureJob) -> None:
    """The layer overview of every model on one corpus."""
    corpus_figure(job.models, job.inputs["tables"], job.wildcards["corpus"], job.outputs["figure"])
