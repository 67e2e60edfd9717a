"""Streaming posctx over a small real Zarr store equals the in-RAM two-pass reference."""

import numpy as np
import polars as pl
import pytest
import xarray as xr

from layergeom.analyses.jobs import run_stream_shard
from layergeom.analyses.posctx.accumulate import SUMS, Decomposition, PosCtxSums
from layergeom.analyses.posctx.components import read_components, run_merge
from layergeom.analyses.posctx.design import grid_design
from layergeom.analyses.posctx.metrics import Settings, layer_metrics, topic_codes
from layergeom.io.shards import shard_range
from layergeom.io.store import create_store
from layergeom.stats.protocol import load, part_path
from layergeom.stats.scatter import Scatter
from layergeom.stream.feeds import scatter_name

N_CTX, T, D, N_LAYERS = 9, 8, 12, 3
TOPICS = ["sport", "tech", "business"]
PLANS = {"posctx": {"include_special": False, "exclude_first_position": True}}


def build(tmp_path, special_inside=3):
    """A store of N_CTX contexts x T tokens ([CLS] at 0, [SEP] at T-1), sequences stored shuffled."""
    rng = np.random.default_rng(0)
    order = rng.permutation(N_CTX)
    seq = np.repeat(order, T)
    position = np.tile(np.arange(T), N_CTX)
    special = (position == 0) | (position == T - 1)
    special |= (seq == special_inside) & (position == 4)
    tokens = pl.DataFrame(
        {
            "seq_id": seq.astype(np.int64),
            "doc_id": (seq * 10).astype(np.int64),
            "topic": [TOPICS[s % 3] for s in seq],
            "position": position.astype(np.int64),
            "token_id": rng.integers(0, 100, seq.size).astype(np.int64),
            "token": ["x"] * seq.size,
            "is_special": special,
        }
    )
    tokens.write_parquet(tmp_path / "tokens.parquet")
    base = rng.standard_normal((N_LAYERS, 1, D)) * 20
    values = (base + rng.standard_normal((N_LAYERS, seq.size, D)) + np.sin(position)[None, :, None]).astype(np.float32)
    attrs = {
        "model": "toy",
        "corpus": "toyctx",
        "mode": "contexts",
        "sequence_length": T,
        "layer_names": ["embeddings", "block_1", "block_2"],
        "n_layers": N_LAYERS - 1,
    }
    array = create_store(tmp_path / "states.zarr", N_LAYERS, seq.size, D, "float32", 10, None, attrs)
    array[...] = values
    return tokens, values.astype(np.float64)


def shard(tmp_path, out, k: int = 0, n_shards: int = 1) -> None:
    """Stream shard k of the built store into the posctx partials ``out`` (specials out, first position out)."""
    run_stream_shard(tmp_path / "states.zarr", tmp_path / "tokens.parquet", out, f"{k}-of-{n_shards}", PLANS)


def reference(tokens, values, layer, include_special, exclude_first):
    """Two-pass in-RAM decomposition of one layer on the selected grid."""
    design = grid_design(tokens, include_special, exclude_first)
    n_ctx, n_pos = design.shape
    h = np.zeros((n_ctx, n_pos, D))
    rows = np.flatnonzero(design.mask)
    h[design.ctx_index[rows], design.pos_index[rows]] = values[layer, rows]
    mu = h.mean(axis=(0, 1))
    centered = (h - mu).reshape(-1, D)
    dec = Decomposition(mu=mu, pos=h.mean(axis=0) - mu, ctx=h.mean(axis=1) - mu, scatter=centered.T @ centered)
    return design, h, dec


@pytest.mark.parametrize("n_shards", [1, 3])
def test_streamed_equals_in_ram(tmp_path, n_shards):
    tokens, values = build(tmp_path)
    parts = [tmp_path / f"part_{k}" for k in range(n_shards)]
    for k, part in enumerate(parts):
        shard(tmp_path, part, k, n_shards)
    settings = Settings(screenot_max_rank=20, ctx_components=4, smoothness_cutoff=3, seed=1)
    table = run_merge(
        tmp_path / "states.zarr",
        tmp_path / "tokens.parquet",
        parts,
        tmp_path / "components.zarr",
        tmp_path / "layers.parquet",
        False,
        True,
        settings,
    )
    comp = read_components(tmp_path / "components.zarr")
    assert table.height == N_LAYERS and pl.read_parquet(tmp_path / "layers.parquet").equals(table)
    for layer in range(N_LAYERS):
        design, h, dec = reference(tokens, values, layer, False, True)
        np.testing.assert_allclose(comp["pos"][layer], dec.pos, rtol=0, atol=1e-10)
        np.testing.assert_allclose(comp["ctx"][layer], dec.ctx, rtol=0, atol=1e-10)
        np.testing.assert_allclose(comp["mean"][layer], dec.mu, rtol=1e-13)
        resid = h - dec.mu - dec.pos[None] - dec.ctx[:, None]
        row = table.row(layer, named=True)
        assert row["resid_share"] == pytest.approx(np.sum(resid**2) / np.sum((h - dec.mu) ** 2), rel=1e-10)
        expected = layer_metrics(dec, topic_codes(design.topics)[0], settings)
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # positions 1..T-2 (first excluded, [SEP] frame out); context 3 has a special inside: dropped
    np.testing.assert_array_equal(comp["positions"], np.arange(1, T - 1))
    assert 3 not in comp["context_ids"] and len(comp["context_ids"]) == N_CTX - 1
    assert comp["topics"] == [TOPICS[c % 3] for c in comp["context_ids"]]
    assert comp["attrs"]["dropped_contexts"] == 1
    assert table["n_positions"].to_list() == [T - 2] * N_LAYERS


def test_design_keeps_specials_when_asked(tmp_path):
    tokens, _ = build(tmp_path)
    design = grid_design(tokens, include_special=True, exclude_first_position=False)
    assert design.shape == (N_CTX, T) and design.dropped_contexts == 0
    assert design.mask.all()


def test_design_rejects_sentence_mode():
    tokens = pl.DataFrame({"seq_id": [0, 0, 1], "position": [0, 1, 0], "is_special": [False] * 3, "topic": [None] * 3})
    with pytest.raises(ValueError, match="contexts-mode"):
        grid_design(tokens, True, False)


def test_shard_ranges_cover_tokens_at_chunk_boundaries():
    ranges = [shard_range(95, 10, k, 4) for k in range(4)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 95
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(start % 10 == 0 for start, _ in ranges)


def test_partial_layout(tmp_path):
    tokens, _ = build(tmp_path)
    shard(tmp_path, tmp_path / "p")
    mask = grid_design(tokens, False, True).mask
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [f"layer_{i:03d}.npz" for i in range(N_LAYERS)]
    for layer in range(N_LAYERS):
        scatter = load(part_path(tmp_path / "p", layer), scatter_name(mask), Scatter)
        sums = load(part_path(tmp_path / "p", layer), SUMS, PosCtxSums)
        assert scatter.scatter.shape == (D, D) and scatter.count == (N_CTX - 1) * (T - 2)
        assert sums.pos_count.tolist() == [N_CTX - 1] * (T - 2) and sums.ctx_count.tolist() == [T - 2] * (N_CTX - 1)


def test_figures_are_written(tmp_path):
    from layergeom.analyses.posctx import plots
    from layergeom.plotting import save

    build(tmp_path)
    part = tmp_path / "p"
    shard(tmp_path, part)
    table = run_merge(
        tmp_path / "states.zarr",
        tmp_path / "tokens.parquet",
        [part],
        tmp_path / "c.zarr",
        tmp_path / "t.parquet",
        False,
        True,
        Settings(ctx_components=3),
    )
    comp = read_components(tmp_path / "c.zarr")
    pos, ctx, attrs, names = comp["pos"], comp["ctx"], comp["attrs"], comp["attrs"]["layer_names"]
    figures = {
        "pca2": plots.pos_pca(pos, comp["positions"], names, attrs, dims=2),
        "pca3": plots.pos_pca(pos, comp["positions"], names, attrs, dims=3),
        "gram": plots.pos_gram(pos, comp["positions"], names, attrs),
        "ctx": plots.ctx_cosines(ctx, comp["topics"], names, attrs),
        "posctx": plots.pos_ctx_cosines(pos, ctx, comp["positions"], names, attrs),
        "layers": plots.layers_overview({"a": table, "b": table}, "toyctx"),
    }
    for name, fig in figures.items():
        save(fig, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_components_open_with_xarray(tmp_path):
    build(tmp_path)
    shard(tmp_path, tmp_path / "part")
    settings = Settings(screenot_max_rank=20, ctx_components=4, smoothness_cutoff=3, seed=1)
    run_merge(
        tmp_path / "states.zarr",
        tmp_path / "tokens.parquet",
        [tmp_path / "part"],
        tmp_path / "components.zarr",
        tmp_path / "layers.parquet",
        False,
        True,
        settings,
    )
    comp = read_components(tmp_path / "components.zarr")
    ds = xr.open_zarr(tmp_path / "components.zarr", consolidated=False)
    assert ds["pos"].dims == ("layer", "position", "d") and ds["ctx"].dims == ("layer", "context", "d")
    assert ds["mean"].dims == ("layer", "d") and set(ds.data_vars) == {"pos", "ctx", "mean"}
    assert ds["layer_name"].values.tolist() == ["embeddings", "block_1", "block_2"]
    np.testing.assert_array_equal(ds["positions"].values, comp["positions"])
    np.testing.assert_array_equal(ds["context_ids"].values, comp["context_ids"])
    assert ds["topic"].values.tolist() == comp["topics"]
    by_position = ds["pos"].swap_dims(position="positions").sel(layer=1, positions=3)
    np.testing.assert_array_equal(by_position.values, comp["pos"][1, list(comp["positions"]).index(3)])
