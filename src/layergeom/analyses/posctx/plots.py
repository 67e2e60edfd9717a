"""Figures of the position/context decomposition: per-layer panels of one store, and layers across models."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from layergeom.analyses.posctx.components import read_components
from layergeom.analyses.posctx.metrics import normalized_gram, project_top, topic_codes, unit_rows
from layergeom.analyses.spec import FigureJob
from layergeom.io.store import after_final_norm
from layergeom.plotting import plt, save


def _grid(n: int, size: float = 2.6, projection: str | None = None) -> tuple[Figure, list]:
    """A near-square grid of n panels; unused cells are hidden."""
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = plt.figure(figsize=(size * cols + 1.0, size * rows + 0.6), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1, projection=projection) for i in range(n)]
    return fig, axes


def _title(fig: Figure, what: str, attrs: Mapping) -> None:
    blocks = attrs.get("n_layers") or 0
    stored = attrs.get("layers") or range(blocks + 1)
    normed = after_final_norm(stored, blocks, attrs.get("last_layer_after_final_norm", False)).any()
    final = f", layer {blocks} after the final norm" if normed else ""
    fig.suptitle(f"{attrs.get('model')} on {attrs.get('corpus')}{final}\n{what}", fontsize=10)


def pos_pca(pos: np.ndarray, positions: np.ndarray, names: Sequence[str], attrs: Mapping, dims: int) -> Figure:
    """pos_t on its top 2 or 3 principal directions, coloured by position, one panel per layer."""
    fig, axes = _grid(len(names), projection="3d" if dims == 3 else None)
    for ax, layer_pos, name in zip(axes, pos, names):
        coords = project_top(layer_pos, dims)
        coords = np.pad(coords, ((0, 0), (0, dims - coords.shape[1])))
        points = ax.scatter(*coords.T, c=positions, cmap="viridis", s=8)
        ax.plot(*coords.T, color="0.7", lw=0.5, zorder=0)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=6)
    fig.colorbar(points, ax=axes, shrink=0.6, label="position")
    _title(fig, f"position vectors on their top {dims} principal directions", attrs)
    return fig


def _heatmaps(mats: Sequence[np.ndarray], names: Sequence[str], vmax: float, extent: tuple | None = None):
    fig, axes = _grid(len(names))
    for ax, mat, name in zip(axes, mats, names):
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest", extent=extent)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=6)
    fig.colorbar(image, ax=axes, shrink=0.6, label="cosine")
    return fig, axes


def pos_gram(pos: np.ndarray, positions: np.ndarray, names: Sequence[str], attrs: Mapping) -> Figure:
    """Cosine Gram matrix of the position vectors, one panel per layer."""
    extent = (positions[0] - 0.5, positions[-1] + 0.5, positions[-1] + 0.5, positions[0] - 0.5)
    fig, _ = _heatmaps([normalized_gram(p) for p in pos], names, 1.0, extent)
    _title(fig, "cosine Gram matrix of the position vectors", attrs)
    return fig


def ctx_cosines(ctx: np.ndarray, topics: Sequence[str | None], names: Sequence[str], attrs: Mapping) -> Figure:
    """Cosines between context vectors, contexts sorted by topic, one panel per layer."""
    codes, labels = topic_codes(topics)
    order = np.argsort(codes, kind="stable")
    edges = np.flatnonzero(np.diff(codes[order])) + 0.5
    mats = []
    for layer_ctx in ctx:
        unit = unit_rows(layer_ctx[order])
        mats.append(unit @ unit.T)
    fig, axes = _heatmaps(mats, names, 1.0)
    for ax in axes:
        for edge in edges:
            ax.axhline(edge, color="k", lw=0.5)
            ax.axvline(edge, color="k", lw=0.5)
    groups = ", ".join(labels) if labels else "no topics"
    _title(fig, f"cosines between context vectors, sorted by topic ({groups})", attrs)
    return fig


def pos_ctx_cosines(
    pos: np.ndarray, ctx: np.ndarray, positions: np.ndarray, names: Sequence[str], attrs: Mapping
) -> Figure:
    """Cosines between every position vector (rows) and context vector (columns), one panel per layer."""
    mats = [unit_rows(p) @ unit_rows(c).T for p, c in zip(pos, ctx)]
    vmax = max(float(np.abs(m).max()) for m in mats) or 1.0
    extent = (-0.5, ctx.shape[1] - 0.5, positions[-1] + 0.5, positions[0] - 0.5)
    fig, axes = _heatmaps(mats, names, vmax, extent)
    for ax in axes:
        ax.set_aspect("auto")
        ax.set_xlabel("context", fontsize=7)
        ax.set_ylabel("position", fontsize=7)
    _title(fig, "cosines between position (rows) and context (columns) vectors", attrs)
    return fig


PANELS: list[tuple[str, list[tuple[str, str]]]] = [
    ("variance shares", [("pos_share", "-"), ("ctx_share", "--"), ("resid_share", ":")]),
    ("pos stable rank", [("pos_stable_rank", "-")]),
    ("pos ScreeNOT rank", [("pos_screenot_rank", "-")]),
    ("pos explained ratio (top r, singular values)", [("pos_explained_ratio", "-")]),
    (
        "pos relative norm: vs mean effects (-), vs centered states (--), vs hidden states (:)",
        [("pos_rel_norm", "-"), ("pos_rel_norm_total", "--"), ("pos_rel_norm_hidden", ":")],
    ),
    ("pos top-2 energy share", [("pos_top2_share", "-")]),
    ("smoothness: low-frequency DCT share", [("smoothness_lowfreq", "-")]),
    ("ctx |cos| projected: within (-), across (--)", [("ctx_within_cos", "-"), ("ctx_across_cos", "--")]),
    ("ctx |cos| raw: within (-), across (--)", [("ctx_within_cos_raw", "-"), ("ctx_across_cos_raw", "--")]),
    (
        "pos-ctx |cos|: max (-), mean (--), random max (:)",
        [("incoherence_max", "-"), ("incoherence_mean", "--"), ("random_baseline", ":")],
    ),
]


def layers_overview(tables: Mapping[str, pl.DataFrame], corpus: str) -> Figure:
    """The layers.parquet quantities of every model over relative depth (layer / number of blocks)."""
    fig, axes = _grid(len(PANELS), size=3.2)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, table) in enumerate(tables.items()):
        depth = table["relative_depth"].to_numpy()
        colour = colours[i % len(colours)]
        for ax, (title, series) in zip(axes, PANELS):
            for j, (column, style) in enumerate(series):
                values = table[column].cast(pl.Float64).to_numpy()
                ax.plot(depth, values, style, color=colour, marker=".", ms=3, label=model if j == 0 else None)
            ax.set_title(title, fontsize=8)
    for ax in axes:
        ax.set_xlabel("relative depth", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"position and context decomposition on {corpus}")
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
