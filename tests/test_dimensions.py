"""The dimensions analysis: rogue-dimension contributions, standardized cosine and IsoScore, from the real stream
shards, merges and passes on a small store, against float64 references in RAM and the IsoScore package."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from IsoScore import IsoScore
from snakemake.utils import validate

from layergeom import config as lgconfig
from layergeom.analyses.anisotropy.metrics import merge_moments
from layergeom.analyses.dimensions.accumulate import UnitSquares, fused_feeds, sample_rows
from layergeom.analyses.dimensions.merge import merge
from layergeom.analyses.dimensions.metrics import isoscore, standardization, top_shares
from layergeom.analyses.dimensions.table import ON_SAMPLE, check_top_k, standardized, write_standardized, write_tables
from layergeom.analyses.jobs import run_stream_shard
from layergeom.analyses.spec import MergeJob
from layergeom.findings.dimensions import rogue_middle
from layergeom.findings.verdicts import FAILS, HOLDS, NOT_APPLICABLE, verdict
from layergeom.io.atomic import write_parquet
from layergeom.io.store import create_store
from layergeom.stats.protocol import Slot, part_path, save
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import Scatter, UnitSum
from layergeom.stream.selection import token_mask

SCHEMA = str(Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml")
SELECTION = {"include_special": False, "exclude_first_position": False}
ATTRS = {"n_layers": 2, "layer_names": ["embeddings", "block_1", "block_2"], "last_layer_after_final_norm": False}


def unit_rows(x: np.ndarray) -> np.ndarray:
    """The nonzero rows of ``x`` as unit vectors."""
    norms = np.linalg.norm(x, axis=1)
    return x[norms > 0] / norms[norms > 0, None]


def pair_contributions(x: np.ndarray) -> np.ndarray:
    """Per dimension, the mean of u_i v_i over ordered pairs of distinct unit vectors (every pair, explicitly)."""
    u = unit_rows(x)
    n = len(u)
    return np.array(
        [(np.outer(u[:, i], u[:, i]).sum() - (u[:, i] ** 2).sum()) / (n * (n - 1)) for i in range(x.shape[1])]
    )


def mean_cos(x: np.ndarray) -> float:
    """Mean pairwise cosine over ordered pairs of distinct rows (two-pass reference)."""
    u = unit_rows(x)
    g = u @ u.T
    return float((g.sum() - np.trace(g)) / (len(u) * (len(u) - 1)))


def rogue_points(n: int = 120, d: int = 12, seed: int = 0) -> np.ndarray:
    """Points with two large-offset 'rogue' dimensions, a constant dimension and a zero row."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    x[:, 3] += 20.0
    x[:, 7] -= 8.0
    x[:, 5] = 2.5
    x[4] = 0.0
    return x


def test_unit_squares_equal_the_pairs_in_any_merge_order():
    x = rogue_points()
    whole = UnitSquares(x.shape[1])
    whole.update(x, np.arange(len(x)))
    parts = []
    for rows in np.array_split(np.arange(len(x)), 4):
        acc = UnitSquares(x.shape[1])
        acc.update(x[rows], rows)
        parts.append(UnitSquares.from_state(acc.state()))
    merged = parts[3]
    for other in parts[2::-1]:
        merged.merge(other)
    np.testing.assert_allclose(merged.finalize(), pair_contributions(x), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(merged.finalize(), whole.finalize(), rtol=1e-12, atol=1e-15)
    assert merged.count == len(x) - 1  # the zero row has no direction
    units = UnitSum(x.shape[1])
    units.update(x, np.arange(len(x)))
    assert abs(merged.finalize().sum() - units.finalize()) <= 1e-12
    shares = top_shares(merged.finalize())
    assert shares["top1_share"] <= shares["top3_share"] <= shares["top10_share"] and shares["top3_share"] > 0.9


def test_standardized_unit_sum_equals_z_scored_reference():
    x = rogue_points(seed=1)
    scatter = Scatter(x.shape[1])
    for rows in np.array_split(np.arange(len(x)), 3):
        scatter.update(x[rows], rows)
    acc = UnitSum(x.shape[1], *standardization(scatter))
    for rows in np.array_split(np.arange(len(x)), 5):
        acc.update(x[rows], rows)
    acc = UnitSum.from_state(acc.state())
    std = x.std(axis=0)
    z = np.where(std > 0, (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0), 0.0)  # a constant dimension adds 0
    assert acc.finalize() == pytest.approx(mean_cos(z), rel=1e-9, abs=1e-13)
    other = UnitSum(x.shape[1], *standardization(scatter)[:1])
    with pytest.raises(ValueError, match="different centers or scales"):
        acc.merge(other)


@pytest.mark.parametrize("shape", [(300, 6), (40, 16), (10, 30)])
def test_isoscore_equals_the_isoscore_package(shape):
    rng = np.random.default_rng(shape[1])
    x = rng.standard_normal(shape) @ rng.standard_normal((shape[1], shape[1])) + 5.0
    scatter = Scatter(shape[1])
    for rows in np.array_split(np.arange(shape[0]), 3):
        scatter.update(x[rows], rows)
    assert isoscore(scatter.finalize()) == pytest.approx(float(IsoScore.IsoScore(x)), abs=1e-6)


def test_isoscore_bounds():
    assert isoscore(np.ones(8)) == pytest.approx(1.0, abs=1e-12)
    assert isoscore(np.array([3.0, 0, 0, 0])) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(isoscore(np.zeros(4)))


@pytest.fixture()
def store(tmp_path):
    rng = np.random.default_rng(0)
    n_tokens, d = 240, 12
    data = np.stack([rogue_points(n_tokens, d, seed) * (1 + seed) for seed in range(3)])
    data[:, :, 9] += rng.standard_normal((3, n_tokens))
    array = create_store(tmp_path / "states.zarr", 3, n_tokens, d, "float32", 40, None, ATTRS)
    array[:] = data.astype(np.float32)
    tokens = pl.DataFrame(
        {
            "seq_id": np.arange(n_tokens) // 10,
            "position": np.arange(n_tokens) % 10,
            "token_id": np.arange(n_tokens),
            "is_special": np.arange(n_tokens) % 10 == 0,
        }
    )
    write_parquet(tokens, tmp_path / "tokens.parquet")
    return tokens, array[:].astype(np.float64)


def test_sharded_passes_equal_in_ram_and_sum_to_anisotropy_mean_cos(store, tmp_path):
    tokens, data = store
    states, token_file = tmp_path / "states.zarr", tmp_path / "tokens.parquet"
    mask = token_mask(tokens, **SELECTION)
    plans = {"anisotropy": SELECTION, "dimensions": SELECTION}
    parts = [tmp_path / "stream" / f"{k}-of-3" for k in range(3)]
    for folder in parts:
        run_stream_shard(states, token_file, folder, folder.name, plans, block_tokens=80)
    outputs = {"layers": tmp_path / "layers1.parquet", "standardize": tmp_path / "standardize.npy"}
    merge(MergeJob(states, token_file, parts, outputs, {}, SELECTION))
    passes = [tmp_path / "standardized" / f"{k}-of-3" for k in range(3)]
    for folder in passes:
        write_standardized(states, token_file, outputs["standardize"], SELECTION, folder.name, None, folder)
    out = {"table": tmp_path / "layers.parquet", "top": tmp_path / "top.parquet"}
    table = write_tables(states, outputs["layers"], outputs["standardize"], passes, [], SELECTION, 3, out)
    spectrum, _ = merge_moments(parts, mask, 3)

    assert table["layer_name"].to_list() == ATTRS["layer_names"]
    assert set(table["standardized_method"]) == {"all_tokens"}
    np.testing.assert_allclose(table["mean_cos"], spectrum["mean_cos"], rtol=0, atol=1e-12)
    top = pl.read_parquet(out["top"])
    assert top.height == 3 * 10 and top["rank"].to_list()[:10] == list(range(1, 11))
    for layer in range(3):
        x = data[layer][mask]
        row = table.row(layer, named=True)
        want = pair_contributions(x)
        order = np.argsort(-want)
        assert row["n_tokens"] == mask.sum()
        assert row["mean_cos"] == pytest.approx(mean_cos(x), rel=1e-10)
        assert row["top_dims"] == order[:3].tolist() and row["top_dims"][:2] == [3, 7]
        np.testing.assert_allclose(row["top_dim_shares"], want[order[:3]] / want.sum(), rtol=1e-9)
        assert row["top3_share"] == pytest.approx(want[order[:3]].sum() / want.sum(), rel=1e-9)
        z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), np.inf)
        assert row["mean_cos_standardized"] == pytest.approx(mean_cos(z), rel=1e-9, abs=1e-13)
        assert row["isoscore"] == pytest.approx(float(IsoScore.IsoScore(x)), abs=1e-6)
        layer_top = top.filter(pl.col("layer") == layer)
        assert layer_top["dim"].to_list() == order[:10].tolist()
        np.testing.assert_allclose(layer_top["contribution"], want[order[:10]], rtol=1e-9, atol=1e-15)


def test_fused_sample_gives_the_standardized_cosine(store, tmp_path):
    """Fused mode: the standardized cosine of the sample (every token when it holds them all)."""
    tokens, data = store
    mask = token_mask(tokens, **SELECTION)
    (feed,) = fused_feeds(tokens, SELECTION, {"n_points": 10_000, "seed": 0})
    assert np.array_equal(feed.mask, mask)
    x = data[1][mask]
    scatter, sample = Scatter(x.shape[1]), PointSample(x.shape[1])
    scatter.update(x, None)
    sample.update(x.astype(np.float32), np.flatnonzero(mask))
    folder = tmp_path / "1-of-1"
    folder.mkdir()
    for layer in range(3):
        save(part_path(folder, layer), {"dimensions/sample": sample}, Slot(layer, "1-of-1", 0, len(tokens), "s"))
    factors = np.stack([standardization(scatter)] * 3)
    cosines = standardized([], [folder], factors)
    z = (x.astype(np.float32).astype(np.float64) - scatter.mean) * factors[0, 1]
    assert set(cosines["standardized_method"]) == {ON_SAMPLE}
    assert cosines["mean_cos_standardized"][1] == pytest.approx(mean_cos(z), rel=1e-9)
    rows = sample_rows(mask, 50, 3)
    assert len(rows) == 50 and np.all(np.diff(rows) > 0) and mask[rows].all()


def test_rogue_claim_on_the_middle_layers():
    table = pl.DataFrame({"relative_depth": [0.0, 0.4, 0.6, 1.0], "top3_share": [0.1, 0.7, 0.5, 0.1]})
    table = table.with_columns(top1_share=pl.col("top3_share") / 2)
    measure = rogue_middle(table)
    assert verdict(measure.ok) == HOLDS and measure.value == pytest.approx(0.6)
    assert verdict(rogue_middle(table.with_columns(top3_share=pl.lit(0.2))).ok) == FAILS
    assert verdict(rogue_middle(table.with_columns(top3_share=pl.lit(float("nan")))).ok) == NOT_APPLICABLE


def test_top_k_beyond_the_hidden_size_is_refused_before_any_job(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 2}')
    config = {"corpora": {"bbc": {"source": "bbc"}}, "models": {"m": {"source": str(tmp_path)}}}
    validate(config, SCHEMA)
    config["dimensions"]["top_k"] = 2
    lgconfig.check(config)
    config["dimensions"]["top_k"] = 3
    with pytest.raises(lgconfig.ConfigError, match=r"dimensions\.top_k = 3 exceeds the hidden size d = 2 of models\.m"):
        lgconfig.check(config)
    with pytest.raises(ValueError, match=r"dimensions\.top_k = 3"):
        check_top_k(3, 2, "states.zarr")
