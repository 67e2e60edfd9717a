"""Figures explain themselves: each line style a figure uses is named in one of its legends, every axes has labels,
per-layer small multiples show a few layers spread over depth, and layer colours are discrete."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from matplotlib.legend import Legend

from layergeom.analyses.anisotropy import plots as anisotropy
from layergeom.analyses.dynamics import plots as dynamics
from layergeom.analyses.layer_cka import plots as layer_cka
from layergeom.analyses.linearity import plots as linearity
from layergeom.analyses.norm_variance import plots as norm_variance
from layergeom.analyses.posctx import plots as posctx
from layergeom.analyses.summary import plots as summary
from layergeom.plotting import MAX_PANELS, plt, spread_layers

DEPTH = np.linspace(0.0, 1.0, 5)
DRIFT_COLUMNS = ("mean_cos", "input_mean_cos", "mean_entropy", "uniform_entropy", "mean_max_weight")


def line_styles(fig: plt.Figure) -> tuple[set[str], set[str]]:
    """The line styles of the plotted lines (markers only: none) and those of the legend handles."""
    used = {line.get_linestyle() for ax in fig.axes for line in ax.get_lines()} - {"None"}
    handles = [h for legend in fig.findobj(Legend) for h in legend.legend_handles if hasattr(h, "get_linestyle")]
    return used, {h.get_linestyle() for h in handles}


def check(fig: plt.Figure) -> None:
    """Every line style beyond a lone solid one is in a legend; every axes drawn has x and y labels."""
    used, named = line_styles(fig)
    required = used if len(used) > 1 else used - {"-"}
    assert required <= named, f"line styles {required - named} are in no legend"
    for ax in fig.axes:
        if ax.get_visible() and ax.get_label() != "<colorbar>" and ax.axison:
            assert ax.get_xlabel() and ax.get_ylabel(), f"axes {ax.get_title()!r} lacks a label"
    plt.close(fig)


@pytest.fixture
def drawn(monkeypatch) -> list[plt.Figure]:
    """The figures the plots modules would save, kept open instead."""
    figures: list[plt.Figure] = []
    for module in (anisotropy, norm_variance, summary, linearity, layer_cka):
        monkeypatch.setattr(module, "save", lambda fig, path: figures.append(fig))
    return figures


def depth_table(model: str, kind: str, init: str = "pretrained", **columns) -> pl.DataFrame:
    """A five-layer table over relative depth with the given model facts and columns (default: ramps)."""
    base = {"relative_depth": DEPTH, "layer": np.arange(5), "after_final_norm": [False] * 4 + [True]}
    facts = {"model": model, "kind": kind, "init": init, "model_source": "src", "revision": "main"}
    return pl.DataFrame({**base, **columns}).with_columns(**{k: pl.lit(v) for k, v in facts.items()})


def ramps(names) -> dict[str, np.ndarray]:
    """A positive ramp per column name."""
    return {name: DEPTH + 0.1 * (i + 1) for i, name in enumerate(names)}


def test_spread_layers_keeps_first_last_and_a_few_between():
    assert spread_layers(5) == [0, 1, 2, 3, 4]
    shown = spread_layers(31)
    assert len(shown) == MAX_PANELS and shown[0] == 0 and shown[-1] == 30 and shown == sorted(shown)


def test_posctx_layer_overview_names_pos_ctx_and_resid_styles():
    columns = [column for panel in posctx.PANELS for column, *_ in panel.series]
    tables = {m: depth_table(m, "decoder", **ramps(columns)) for m in ("a", "b")}
    fig = posctx.layers_overview(tables, "ctx")
    shares = next(ax for ax in fig.axes if ax.get_title() == "variance shares")
    assert [t.get_text() for t in shares.get_legend().get_texts()] == ["pos", "ctx", "resid"]
    assert {t.get_text() for legend in fig.legends for t in legend.get_texts()} == {"a", "b"}
    check(fig)


def test_posctx_panels_show_a_few_layers_of_a_deep_model():
    rng = np.random.default_rng(0)
    pos, ctx = rng.standard_normal((31, 6, 4)), rng.standard_normal((31, 5, 4))
    names = ["embeddings"] + [f"block_{i}" for i in range(1, 31)]
    attrs = {"model": "m", "corpus": "c", "n_layers": 30}
    positions = np.arange(1, 7)
    for fig in (
        posctx.pos_pca(pos, positions, names, attrs, dims=2),
        posctx.pos_pca(pos, positions, names, attrs, dims=3),
        posctx.pos_gram(pos, positions, names, attrs),
        posctx.ctx_cosines(ctx, ["x", "x", "y", None, "y"], names, attrs),
        posctx.pos_ctx_cosines(pos, ctx, positions, names, attrs),
    ):
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert [ax.get_title() for ax in panels] == [names[i] for i in spread_layers(31)]
        assert "8 of 31 layers" in fig.get_suptitle()
        check(fig)


def test_norm_variance_overlays_name_variants_and_the_reference(drawn, tmp_path):
    columns = ("slope", "r2", "cv_q", "vw_over_v", "m_share", "vb_share", "vw_share")
    frame = pl.concat([depth_table("a", "decoder", variant=v, **ramps(columns)) for v in ("all", "filtered")])
    paths = [tmp_path / f"{m}.parquet" for m in ("a", "b")]
    for path in paths:
        frame.write_parquet(path)
    norm_variance.overlay_figures(["a", "b"], paths, "c", {k: "x" for k in ("slope_r2", "cv_q", "vw_over_v", "shares")})
    assert len(drawn) == 4
    for fig in drawn:
        check(fig)


def test_anisotropy_and_summary_figures_name_their_styles(drawn, tmp_path):
    columns = ("mean_cos", "mean_cos_centered", "sigma1_share", "eff_rank", "twonn_id", "sl_id", "levina_bickel_id")
    bands = {f"{name}_{end}": DEPTH + (end == "hi") for name in ("twonn", "sl_id") for end in ("lo", "hi")}
    tables = [
        depth_table("dec", "decoder", **ramps(columns), **bands),
        depth_table("enc", "encoder", **ramps(columns), **bands),
        depth_table("dec_random", "decoder", "random", **ramps(columns), **bands),
    ]
    paths = [tmp_path / f"{i}.parquet" for i in range(3)]
    for table, path in zip(tables, paths):
        table.write_parquet(path)
    selection = {"include_special": False, "exclude_first_position": False}
    settings = {"discard_fraction": 0.1, "confidence": 0.9, "k_neighbors": 5, "sample": "first", "n_points": 10}
    anisotropy.depth_figures(paths, "c", selection, settings, {"anisotropy": "x", "intrinsic_dimension": "y"})
    anisotropy.random_figure(paths, "c", selection, "z")
    depth_table("a", "decoder", mean_norm=DEPTH + 1, mean_sq_norm=DEPTH + 2).write_parquet(tmp_path / "norms.parquet")
    summary.norms_figure(["a"], [tmp_path / "norms.parquet"], "c", selection, "w")
    assert len(drawn) == 4
    for fig in drawn:
        check(fig)


def test_linearity_figure_names_its_styles(drawn, tmp_path):
    paths = [tmp_path / f"{m}.parquet" for m in ("a", "b")]
    for path in paths:
        depth_table("a", "decoder", **ramps(("linearity", "linearity_residual", "cka"))).write_parquet(path)
    linearity.depth_figure(["a", "b"], paths, "c", {"include_special": False, "exclude_first_position": True}, "x")
    [fig] = drawn
    check(fig)


def test_layer_cka_heatmap_has_a_panel_per_model_and_a_labelled_colour_bar(drawn, tmp_path):
    paths = []
    for model, n in (("a", 4), ("b", 7)):
        first, second = np.triu_indices(n, k=1)
        table = pl.DataFrame({"layer": first, "other_layer": second, "cka": 1.0 / (1.0 + second - first)})
        paths.append(tmp_path / f"{model}.parquet")
        table.write_parquet(paths[-1])
    layer_cka.heatmap_figure(["a", "b"], paths, "c", {"include_special": False, "exclude_first_position": True}, "x")
    [fig] = drawn
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["a", "b"]
    assert panels[1].get_images()[0].get_array().shape == (7, 7)
    assert "linear CKA" in fig.axes[-1].get_ylabel()
    check(fig)


def test_drift_and_loss_figures_name_their_dotted_lines():
    rows = [
        (kind, block, drift, repeat)
        for kind in ("gpt2", "bert")
        for block in (1, 2)
        for drift in (0.0, 1.0, 10.0)
        for repeat in (0, 1)
    ]
    table = pl.DataFrame(rows, schema=["block_type", "block", "drift", "repeat"], orient="row").with_columns(
        **{c: pl.col("drift") / 10 + pl.col("repeat") for c in DRIFT_COLUMNS}
    )
    check(dynamics.drift_figure(table))
    loss = pl.DataFrame(
        {"step": [0, 1, 2], "loss": [None, 5.0, 4.0], "eval_loss": [6.0, 5.5, None], "checkpoint": [True, True, False]}
    )
    check(dynamics.loss_figure(loss, "run"))


@pytest.mark.parametrize("first", [0, 1])
def test_over_training_colours_integer_layers_discretely(first):
    layers = np.arange(first, first + 5)
    tables = [(s, pl.DataFrame({"layer": layers, "qk_cos": layers * 0.1 + s})) for s in (0, 4, 16)]
    fig = dynamics.over_training(tables, ["qk_cos"], "t")
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    assert [t.get_text() for t in bar.get_yticklabels()] == [str(layer) for layer in layers]
    assert ("0 = embeddings" in bar.get_ylabel()) == (first == 0)
    colours = {line.get_color() for line in fig.axes[0].get_lines()}
    assert len(colours) == len(layers)
    check(fig)
