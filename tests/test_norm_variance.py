"""Norm-variance tables against a float64 two-pass in-RAM reference, from moments and from a store."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from layergeom.analyses.jobs import run_stream_shard
from layergeom.analyses.norm_variance.accumulate import feeds, type_keys
from layergeom.analyses.norm_variance.metrics import Exclusions, analyse_layer, norm_variance_tables, ols
from layergeom.io.shards import shard_range
from layergeom.io.store import block_step, create_store, open_hidden
from layergeom.stats.moments import chunk_moments
from layergeom.stream.driver import stream_to_folder
from layergeom.stream.selection import token_mask

RTOL = 1e-10
LO, HI = 3, 200
SELECTION = {"include_special": False, "exclude_first_position": False}


def corpus(rng: np.random.Generator, n_seq: int = 60, types: int = 25) -> pl.DataFrame:
    """A token table: sequences of 3..15 tokens, Zipf-like ids, id 0 a special token at position 0."""
    lengths = rng.integers(3, 16, size=n_seq)
    seq_id = np.repeat(np.arange(n_seq), lengths)
    position = np.concatenate([np.arange(n) for n in lengths])
    token_id = np.minimum(rng.zipf(1.4, size=len(seq_id)), types - 1)
    token_id[position == 0] = np.where(rng.random((position == 0).sum()) < 0.5, 0, 7)
    return pl.DataFrame(
        {
            "seq_id": seq_id,
            "doc_id": seq_id // 4,
            "topic": None,
            "position": position,
            "token_id": token_id,
            "token": [f"t{i}" for i in token_id],
            "is_special": token_id == 0,
        },
        schema_overrides={"topic": pl.String},
    )


def hidden(rng: np.random.Generator, tokens: pl.DataFrame, layers: int = 3, d: int = 12) -> np.ndarray:
    """States with type means far from the origin (M >> V), a massive first position and type 5."""
    ids = tokens["token_id"].to_numpy()
    first = tokens["position"].to_numpy() == 0
    out = np.empty((layers, len(ids), d))
    for layer in range(layers):
        centers = rng.normal(0.0, 50.0, size=(ids.max() + 1, d))
        out[layer] = centers[ids] + rng.normal(0.0, 0.05 * (layer + 1), size=(len(ids), d))
        if layer:
            out[layer, first] += 3e3
            out[layer, ids == 5] *= 40.0
    return out


def reference_types(x: np.ndarray, ids: np.ndarray, keep: np.ndarray) -> dict[int, tuple]:
    """Two-pass n, mean, Q, M, V per token id over rows ``keep``."""
    out = {}
    for t in np.unique(ids[keep]):
        rows = x[keep & (ids == t)]
        mean = rows.mean(axis=0)
        out[int(t)] = (
            len(rows),
            mean,
            float(np.mean(np.sum(rows**2, axis=1))),
            float(mean @ mean),
            float(np.mean(np.sum((rows - mean) ** 2, axis=1))),
        )
    return out


def reference_layer(x, ids, keep, drop_ids=(), factor=None) -> tuple[dict, dict, list[int]]:
    """Reference per-type values, the layer row and the types used (pooled in RAM, two-pass)."""
    types = reference_types(x, ids, keep)
    in_range = [t for t, v in types.items() if LO <= v[0] <= HI and t not in drop_ids]
    if factor is not None:
        median = np.median([types[t][2] for t in in_range])
        in_range = [t for t in in_range if types[t][2] <= factor * median]
    pooled = x[keep & np.isin(ids, in_range)]
    center = pooled.mean(axis=0)
    big_n = len(pooled)
    v_all = float(np.mean(np.sum((pooled - center) ** 2, axis=1)))
    v_w = sum(types[t][0] * types[t][4] for t in in_range) / big_n
    v_b = sum(types[t][0] * np.sum((types[t][1] - center) ** 2) for t in in_range) / big_n
    q_all = float(np.mean(np.sum(pooled**2, axis=1)))
    m_vals = np.array([types[t][3] for t in in_range])
    v_vals = np.array([types[t][4] for t in in_range])
    q_vals = np.array([types[t][2] for t in in_range])
    slope, intercept = np.polyfit(m_vals, v_vals, 1)
    row = {
        "n_types": len(in_range),
        "n_tokens": big_n,
        "slope": slope,
        "intercept": intercept,
        "r2": np.corrcoef(m_vals, v_vals)[0, 1] ** 2,
        "cv_q": q_vals.std() / q_vals.mean(),
        "q_all": q_all,
        "m_all": float(center @ center),
        "v_w": v_w,
        "v_b": v_b,
        "v_all": v_all,
    }
    return types, row, in_range


def check_row(row: dict, ref: dict) -> None:
    """The layer row equals the reference; identities hold to RTOL."""
    assert row["n_types"] == ref["n_types"] and row["n_tokens"] == ref["n_tokens"]
    for key in ("q_all", "m_all", "v_w", "v_b", "cv_q"):
        assert row[key] == pytest.approx(ref[key], rel=RTOL), key
    for key in ("slope", "intercept", "r2"):
        assert row[key] == pytest.approx(ref[key], rel=1e-8), key
    assert row["v_w"] + row["v_b"] == pytest.approx(ref["v_all"], rel=RTOL)
    assert row["m_share"] + row["vb_share"] + row["vw_share"] == pytest.approx(1.0, abs=RTOL)
    assert row["vw_over_v"] == pytest.approx(ref["v_w"] / ref["v_all"], rel=RTOL)
    assert row["max_identity_error"] < 1e-12


def check_types(frame: pl.DataFrame, ref: dict) -> None:
    """Per-type n, Q, M, V equal the reference."""
    assert frame["token_id"].to_list() == sorted(ref)
    expected = np.array([[ref[t][0], *ref[t][2:]] for t in sorted(ref)])
    np.testing.assert_array_equal(frame["n"].to_numpy(), expected[:, 0])
    for j, col in enumerate(("Q", "M", "V"), start=1):
        np.testing.assert_allclose(frame[col].to_numpy(), expected[:, j], rtol=RTOL, atol=0)


def test_ols_matches_polyfit_and_degenerate_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 2.0 - 0.9 * x + rng.normal(scale=0.1, size=50)
    slope, intercept, r2 = ols(x, y)
    np.testing.assert_allclose([slope, intercept], np.polyfit(x, y, 1), rtol=1e-12)
    assert r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-12)
    assert all(np.isnan(ols(np.ones(5), y[:5])))
    assert all(np.isnan(ols(x[:1], y[:1])))


def test_shard_ranges_cover_tokens_aligned():
    for n_tokens, step, shards in ((1000, 64, 3), (64, 64, 4), (5, 64, 2), (4096, 128, 7)):
        bounds = [shard_range(n_tokens, step, k, shards) for k in range(shards)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n_tokens
        assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:]))
        assert all(lo % step == 0 for lo, _ in bounds)
    with pytest.raises(ValueError):
        shard_range(10, 4, 2, 2)


def test_analyse_layer_matches_reference_with_and_without_exclusions():
    rng = np.random.default_rng(1)
    tokens = corpus(rng)
    x = hidden(rng, tokens)[2]
    ids = tokens["token_id"].to_numpy()
    position = tokens["position"].to_numpy()
    keep = token_mask(tokens)
    keys = type_keys(ids, position)
    moments = chunk_moments(x[keep], keys[keep])
    exclusions = Exclusions(token_ids=(3,), first_position=True, outlier_factor=10.0)
    result = analyse_layer(moments, 2, LO, HI, exclusions, top=4)
    rows = {row["variant"]: row for row in result.summary}

    types_all, ref_all, used_all = reference_layer(x, ids, keep)
    check_row(rows["all"], ref_all)
    check_types(result.types.filter(pl.col("variant") == "all"), types_all)

    keep_f = keep & (position != 0)
    types_f, ref_f, used_f = reference_layer(x, ids, keep_f, drop_ids=(3,), factor=10.0)
    check_row(rows["filtered"], ref_f)
    filtered = result.types.filter(pl.col("variant") == "filtered")
    check_types(filtered, types_f)
    assert 5 not in used_f and 3 not in used_f  # the planted outlier and the listed id
    assert rows["filtered"]["n_excluded"] == 2
    assert sorted(filtered.filter(pl.col("in_range") & ~pl.col("excluded"))["token_id"]) == sorted(used_f)

    for variant, mask in (("all", keep), ("filtered", keep_f)):  # the whole set: every type, any count
        points = x[mask].astype(np.float64)
        center = points.mean(axis=0)
        v = ((points - center) ** 2).sum(axis=1).mean()
        v_w = sum(((points[ids[mask] == t] - points[ids[mask] == t].mean(0)) ** 2).sum() for t in set(ids[mask]))
        q = (points**2).sum(axis=1).mean()
        row = rows[variant]
        assert row["whole_n_tokens"] == mask.sum() and row["whole_m_share"] == pytest.approx(center @ center / q)
        assert row["whole_vw_share"] == pytest.approx(v_w / mask.sum() / q, rel=RTOL)
        assert row["whole_vw_over_v"] == pytest.approx(v_w / mask.sum() / v, rel=RTOL)
        assert row["whole_m_share"] + row["whole_vw_share"] + row["whole_vb_share"] == pytest.approx(1, abs=1e-12)

    top = result.top
    assert top["rank"].to_list() == [1, 2, 3, 4]
    assert top["Q"].to_list() == sorted(top["Q"].to_list(), reverse=True)
    # Type 7 opens half the sequences (massive first position), type 5 is massive everywhere.
    assert set(top["token_id"][:2]) == {5, 7}
    flagged = dict(zip(top["token_id"], top["in_filtered"]))
    assert not flagged[5] and flagged[7]
    median = np.median([types_all[t][2] for t in used_all])
    ratio = dict(zip(top["token_id"], top["q_over_median"]))
    assert ratio[5] == pytest.approx(types_all[5][2] / median, rel=RTOL)


def test_first_position_kept_when_not_excluded():
    rng = np.random.default_rng(2)
    tokens = corpus(rng)
    x = hidden(rng, tokens)[1]
    ids, position = tokens["token_id"].to_numpy(), tokens["position"].to_numpy()
    keep = token_mask(tokens, include_special=True)
    moments = chunk_moments(x[keep], type_keys(ids, position)[keep])
    result = analyse_layer(moments, 1, LO, HI, Exclusions((), False, None), top=3)
    rows = {row["variant"]: row for row in result.summary}
    types, ref, _ = reference_layer(x, ids, keep)
    check_row(rows["filtered"], ref)
    assert rows["filtered"]["n_excluded"] == 0
    check_types(result.types.filter(pl.col("variant") == "filtered"), types)


@pytest.mark.parametrize(("dtype", "shards", "block"), [("float32", 3, None), ("float16", 2, 128)])
def test_streaming_from_store_equals_in_ram_reference(tmp_path, dtype, shards, block):
    rng = np.random.default_rng(3)
    tokens = corpus(rng, n_seq=80)
    states = hidden(rng, tokens)
    path = tmp_path / "states.zarr"
    attrs = {"layer_names": ["embeddings", "block_1", "block_2"], "last_layer_after_final_norm": True}
    array = create_store(path, 3, tokens.height, states.shape[2], dtype, 64, None, attrs)
    array[:] = states.astype(dtype)
    array = open_hidden(path)
    stored = np.asarray(array[:], dtype=np.float64)

    ids, position = tokens["token_id"].to_numpy(), tokens["position"].to_numpy()
    keep = token_mask(tokens)
    parts = [tmp_path / "parts" / f"{k}-of-{shards}" for k in range(shards)]
    step = block_step(array, block)
    for k, folder in enumerate(parts):
        token_range = shard_range(tokens.height, step, k, shards)
        stream_to_folder(array, feeds(tokens, SELECTION), folder, token_range, block, folder.name)
    exclusions = Exclusions(token_ids=(3,), first_position=True, outlier_factor=10.0)
    tables = norm_variance_tables(parts[::-1], array, tokens, LO, HI, exclusions, top=5)

    assert tables.layers["variant"].to_list() == ["all"] * 3 + ["filtered"] * 3
    assert tables.layers["layer_name"].to_list() == ["embeddings", "block_1", "block_2"] * 2
    assert tables.layers["relative_depth"].to_list() == [0.0, 0.5, 1.0] * 2
    assert tables.layers.filter(pl.col("after_final_norm"))["layer"].unique().to_list() == [2]
    for layer in range(3):
        for variant, mask, drop, factor in (
            ("all", keep, (), None),
            ("filtered", keep & (position != 0), (3,), 10.0),
        ):
            types, ref, _ = reference_layer(stored[layer], ids, mask, drop, factor)
            row = tables.layers.filter((pl.col("layer") == layer) & (pl.col("variant") == variant))
            check_row(row.row(0, named=True), ref)
            frame = tables.types.filter((pl.col("layer") == layer) & (pl.col("variant") == variant))
            check_types(frame, types)
            assert frame["token"].to_list() == [f"t{t}" for t in sorted(types)]
    assert tables.top["token"].null_count() == 0
    assert set(tables.types["variant"].unique()) == {"all", "filtered"}


def test_shard_rejects_mismatched_token_table(tmp_path):
    create_store(tmp_path / "s.zarr", 2, 10, 4, "float32", 4, None, {})
    corpus(np.random.default_rng(5)).head(9).write_parquet(tmp_path / "t.parquet")
    plans = {"norm_variance": SELECTION}
    with pytest.raises(ValueError, match="has 9 rows but .* stores 10 tokens"):
        run_stream_shard(tmp_path / "s.zarr", tmp_path / "t.parquet", tmp_path / "p", "0-of-1", plans)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("min_count", [LO, 10**6])
def test_figures_from_tables_including_empty_range(tmp_path, min_count):
    from layergeom.analyses.norm_variance.plots import (
        histograms,
        overlay,
        scatter_grid,
        shares_figure,
        top_q_figure,
        type_pca,
    )

    rng = np.random.default_rng(4)
    tokens = corpus(rng)
    states = hidden(rng, tokens)
    array = create_store(tmp_path / "s.zarr", 3, tokens.height, states.shape[2], "float32", 64, None, {})
    array[:] = states
    tokens.write_parquet(tmp_path / "t.parquet")
    plans = {"norm_variance": SELECTION}
    run_stream_shard(tmp_path / "s.zarr", tmp_path / "t.parquet", tmp_path / "part", "0-of-1", plans)
    tables = norm_variance_tables([tmp_path / "part"], array, tokens, min_count, 10**7, Exclusions(), top=3)
    if min_count > LO:
        assert tables.layers["n_types"].to_list() == [0] * 6
        assert tables.layers["slope"].is_nan().all() and tables.top.height == 0
    out = tmp_path / "fig"
    scatter_grid(tables.types, tables.layers, "filtered", "m on c", out / "scatter.png")
    top_q_figure(tables.types, tables.top, 10.0, 5, "m on c", out / "top.png")
    frames = {"a": tables.layers, "b": tables.layers}
    overlay(frames, [("slope", "slope"), ("r2", "R²")], "c", out / "slope.png", hlines={"slope": -1})
    shares_figure(frames, "c", out / "shares.png")
    histograms(tables.types, "m on c", out / "histograms.png")
    type_pca(tables.pca, "m on c", out / "pca.png")
    names = ["histograms.png", "pca.png", "scatter.png", "shares.png", "slope.png", "top.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert tables.pca.height == (0 if min_count > LO else tables.types.filter(variant="all", in_range=True).height)
