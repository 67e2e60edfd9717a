"""Figures of the norm-variance stage, drawn from its tables."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from layergeom.analyses.spec import FigureJob
from layergeom.plotting import panel_grid, plt, save, shown_layers, spread_layers, style_legend

LINESTYLES = {"all": "-", "filtered": "--"}
SHARES = (("m_share", "M_all / Q_all"), ("vb_share", "V_B / Q_all"), ("vw_share", "V_W / Q_all"))


def layer_panels(layers: Sequence[int]) -> tuple[plt.Figure, list, list[int]]:
    """A panel per shown layer (``spread_layers``) and the layers shown."""
    shown = [layers[i] for i in spread_layers(len(layers))]
    fig, axes = panel_grid(max(len(shown), 1), size=3.0)
    return fig, axes, shown


def scatter_grid(types: pl.DataFrame, layers: pl.DataFrame, variant: str, title: str, path: str | os.PathLike) -> None:
    """V against M of the types entering the fit, a panel per shown layer, with the fitted line."""
    rows = layers.filter(pl.col("variant") == variant).sort("layer")
    points = types.filter((pl.col("variant") == variant) & pl.col("in_range") & ~pl.col("excluded"))
    fig, axes, shown = layer_panels(rows["layer"].to_list())
    for ax, row in zip(axes, rows.filter(pl.col("layer").is_in(shown)).iter_rows(named=True)):
        layer = points.filter(pl.col("layer") == row["layer"])
        m, v = layer["M"].to_numpy(), layer["V"].to_numpy()
        ax.scatter(m, v, s=3, alpha=0.4, color="tab:blue", linewidths=0)
        if np.isfinite(row["slope"]):
            line = np.array([m.min(), m.max()])
            ax.plot(line, row["intercept"] + row["slope"] * line, color="tab:red", lw=1)
        ax.text(
            0.97,
            0.95,
            f"b = {row['slope']:.3f}\n$R^2$ = {row['r2']:.3f}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
        name = row["layer_name"] + (" (final norm)" if row["after_final_norm"] else "")
        ax.set_title(f"{row['layer']}: {name}", fontsize=9)
        ax.set_xlabel("M = ||mean||²", fontsize=8)
        ax.set_ylabel("V", fontsize=8)
    fig.suptitle(f"{title} — variant {variant}\n({shown_layers(len(shown), rows.height)})")
    save(fig, path)


def histograms(types: pl.DataFrame, title: str, path: str | os.PathLike) -> None:
    """Histograms of Q, M and V over the types in the count range (variant all), a panel per shown layer."""
    rows = types.filter((pl.col("variant") == "all") & pl.col("in_range"))
    layers = sorted(set(types["layer"].to_list()))
    fig, axes, shown = layer_panels(layers)
    for ax, layer in zip(axes, shown):
        values = rows.filter(pl.col("layer") == layer)
        positive = np.concatenate([values[c].to_numpy() for c in ("Q", "M", "V")])
        positive = positive[positive > 0]
        if len(positive):
            bins = np.geomspace(positive.min(), positive.max() * 1.0001, 30)
            for column, color in (("Q", "k"), ("M", "tab:blue"), ("V", "tab:red")):
                ax.hist(values[column].to_numpy(), bins=bins, histtype="step", color=color, label=column)
            ax.set_xscale("log")
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("Q, M or V", fontsize=8)
        ax.set_ylabel("token types", fontsize=8)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Q, M and V over token types (in count range, variant all) — {title}\n"
        f"({shown_layers(len(shown), len(layers))})"
    )
    save(fig, path)


def type_pca(pca: pl.DataFrame, title: str, path: str | os.PathLike) -> None:
    """The types' means on their first two principal directions per shown layer, coloured by log10 count."""
    layers = sorted(set(pca["layer"].to_list()))
    fig, axes, shown = layer_panels(layers)
    counts = np.log10(pca["n"].to_numpy()) if pca.height else np.zeros(0)
    low, high = (counts.min(), counts.max()) if len(counts) else (0.0, 1.0)
    image = None
    for ax, layer in zip(axes, shown):
        rows = pca.filter(pl.col("layer") == layer)
        image = ax.scatter(
            rows["pc1"],
            rows["pc2"],
            c=np.log10(rows["n"].to_numpy()),
            s=3,
            cmap="viridis",
            vmin=low,
            vmax=high,
            linewidths=0,
        )
        share = rows["explained1"][0] + rows["explained2"][0] if rows.height else np.nan
        ax.set_title(f"layer {layer} (PC1+2: {share:.0%})", fontsize=9)
    for ax in axes:
        ax.set_xlabel("PC1", fontsize=8)
        ax.set_ylabel("PC2", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, label="log10 count", shrink=0.6)
    fig.suptitle(f"PCA of the per-type mean embeddings — {title}\n({shown_layers(len(shown), len(layers))})")
    save(fig, path)


def top_q_figure(
    types: pl.DataFrame,
    top: pl.DataFrame,
    factor: float | None,
    lines: int,
    title: str,
    path: str | os.PathLike,
) -> None:
    """Q over the median Q at every layer of the types reaching the largest Q/median, log scale."""
    peaks = (
        top.group_by("token_id")
        .agg(pl.col("q_over_median").max().alias("peak"), pl.col("token").first())
        .sort("peak", "token_id", descending=[True, False])
        .head(lines)
    )
    in_range = types.filter((pl.col("variant") == "all") & pl.col("in_range"))
    ratios = in_range.with_columns((pl.col("Q") / pl.col("Q").median().over("layer")).alias("ratio"))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for token_id, token in zip(peaks["token_id"], peaks["token"]):
        rows = ratios.filter(pl.col("token_id") == token_id).sort("layer")
        ax.plot(rows["layer"], rows["ratio"], marker="o", ms=3, label=f"{token!r} ({token_id})")
    if factor is not None:
        ax.axhline(factor, color="k", ls=":", lw=1, label=f"outlier rule: {factor:g} × median")
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("Q / median Q of the types in range")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    save(fig, path)


def overlay(
    frames: Mapping[str, pl.DataFrame],
    columns: Sequence[tuple[str, str]],
    title: str,
    path: str | os.PathLike,
    hlines: Mapping[str, float] | None = None,
) -> None:
    """One panel per column over relative depth; a colour per model, a line style per variant."""
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 4.4), squeeze=False, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (column, label) in zip(axes[0], columns):
        for i, (model, frame) in enumerate(frames.items()):
            for variant, style in LINESTYLES.items():
                rows = frame.filter(pl.col("variant") == variant).sort("layer")
                x, y = rows["relative_depth"].to_numpy(), rows[column].to_numpy()
                colour = colours[i % len(colours)]
                ax.plot(x, y, ls=style, marker="o", ms=3, color=colour, label=model if variant == "all" else None)
                final = rows["after_final_norm"].to_numpy()
                ax.plot(x[final], y[final], "s", mfc="none", ms=8, color=colour)
        if hlines and column in hlines:
            ax.axhline(hlines[column], color="k", ls=":", lw=1)
        ax.set_xlabel("relative depth (layer / number of blocks)")
        ax.set_ylabel(label)
    axes[0, 0].legend(fontsize=7, title="model", title_fontsize=7)
    styles = {f"variant {variant}": style for variant, style in LINESTYLES.items()}
    styles["last layer after the final norm"] = {"linestyle": "None", "marker": "s", "mfc": "none", "ms": 8}
    styles.update({f"{column} = {value:g}": ":" for column, value in (hlines or {}).items()})
    style_legend(fig, styles, fontsize=8, loc="outside lower center", ncols=len(styles))
    fig.suptitle(title)
    save(fig, path)


def shares_figure(frames: Mapping[str, pl.DataFrame], title: str, path: str | os.PathLike) -> None:
    """Stacked M_all, V_B and V_W shares of Q_all over relative depth, per model and variant."""
    variants = list(LINESTYLES)
    fig, axes = plt.subplots(len(variants), len(frames), figsize=(5 * len(frames), 3.6 * len(variants)), squeeze=False)
    for j, (model, frame) in enumerate(frames.items()):
        for i, variant in enumerate(variants):
            rows = frame.filter(pl.col("variant") == variant).sort("layer")
            ax = axes[i, j]
            ax.stackplot(
                rows["relative_depth"].to_numpy(),
                *[rows[col].to_numpy() for col, _ in SHARES],
                labels=[label for _, label in SHARES],
                alpha=0.85,
            )
            ax.set_ylim(0, 1)
            ax.set_title(f"{model} — {variant}", fontsize=10)
            ax.set_xlabel("relative depth")
            ax.set_ylabel("share of Q_all")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def model_figures(
    types: str | os.PathLike,
    layers: str | os.PathLike,
    top: str | os.PathLike,
    pca: str | os.PathLike,
    title: str,
    outlier_factor: float | None,
    lines: int,
    out: Mapping[str, str | os.PathLike],
) -> None:
    """One model on one corpus: V against M per layer for both variants, the largest-Q types, the histograms of
    Q, M, V and the PCA of the type means."""
    type_rows, layer_rows = pl.read_parquet(types), pl.read_parquet(layers)
    scatter_grid(type_rows, layer_rows, "all", title, out["scatter_all"])
    scatter_grid(type_rows, layer_rows, "filtered", title, out["scatter_filtered"])
    top_q_figure(type_rows, pl.read_parquet(top), outlier_factor, lines, f"Largest Q per layer — {title}", out["top_q"])
    histograms(type_rows, title, out["histograms"])
    type_pca(pl.read_parquet(pca), title, out["type_pca"])


def overlay_figures(
    models: Sequence[str], tables: Sequence[str | os.PathLike], corpus: str, out: Mapping[str, str | os.PathLike]
) -> None:
    """Every model of one corpus over relative depth: fit, spread of Q, shares and V_W / V_all."""
    frames = {model: pl.read_parquet(path) for model, path in zip(models, tables)}
    overlay(
        frames,
        [("slope", "slope b of V = a + b M"), ("r2", "R² of the fit")],
        f"Fit of V on M over token types — {corpus}",
        out["slope_r2"],
        hlines={"slope": -1.0},
    )
    overlay(frames, [("cv_q", "std / mean of Q over types")], f"Spread of Q — {corpus}", out["cv_q"])
    overlay(frames, [("vw_over_v", "V_W / V_all")], f"Within-type share of variance — {corpus}", out["vw_over_v"])
    shares_figure(frames, f"Decomposition of Q_all — {corpus}", out["shares"])


def pair_figures(job: FigureJob) -> None:
    """The per-layer figures of one model on one corpus."""
    wc, facts = job.wildcards, job.facts
    inputs = job.inputs
    title = f"{wc['model']} on {wc['corpus']}"
    model_figures(
        inputs["types"],
        inputs["layers"],
        inputs["top"],
        inputs["pca"],
        title,
        facts["outlier_factor"],
        facts["lines"],
        job.outputs,
    )


def corpus_figures(job: FigureJob) -> None:
    """The overlays of every model on one corpus."""
    overlay_figures(job.models, job.inputs["tables"], job.wildcards["corpus"], job.outputs)
