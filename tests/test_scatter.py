"""Unit-vector sums and the scatter against brute-force float64 references on small data."""

import numpy as np
import pytest

from layergeom.analyses.anisotropy.metrics import spectrum_measures
from layergeom.io.shards import shard_range
from layergeom.io.store import create_store, open_hidden
from layergeom.stats.protocol import load, merged, save
from layergeom.stats.scatter import Scatter, UnitSum
from layergeom.stream.driver import Feed, stream_layers


def brute_mean_cosine(x: np.ndarray) -> float:
    """Mean cosine over ordered pairs i != j by forming every pair."""
    norms = np.linalg.norm(x, axis=1)
    u = x[norms > 0] / norms[norms > 0, None]
    gram = u @ u.T
    n = len(u)
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))


def svd_measures(x: np.ndarray) -> dict:
    """sigma1 share, top shares and effective rank from numpy's SVD of the centered data."""
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    shares = s**2 / np.sum(s**2)
    p = shares[shares > 0]
    return {"sigma1_share": shares[0], "top_shares": shares[:10], "eff_rank": np.exp(-np.sum(p * np.log(p)))}


def anisotropic(rng: np.random.Generator, n: int, d: int, offset: float = 3.0) -> np.ndarray:
    """Points with a common drift direction and an uneven spectrum."""
    return offset * rng.standard_normal(d) + rng.standard_normal((n, d)) * np.linspace(2.0, 0.1, d)


def fed(acc, x: np.ndarray):
    """``acc`` after one update with all rows of ``x``."""
    acc.update(x, np.arange(len(x)))
    return acc


def test_mean_cosine_matches_pairwise():
    rng = np.random.default_rng(0)
    x = anisotropic(rng, 60, 7)
    x[5] = 0.0  # no direction: left out of the pairs
    units = fed(UnitSum(7), x)
    assert units.count == 59
    assert units.finalize() == pytest.approx(brute_mean_cosine(x), rel=1e-12)
    centered = fed(UnitSum(7, center=x.mean(axis=0)), x)
    assert centered.finalize() == pytest.approx(brute_mean_cosine(x - x.mean(axis=0)), rel=1e-10)


def test_spectrum_matches_svd():
    rng = np.random.default_rng(1)
    x = anisotropic(rng, 200, 12)
    got = spectrum_measures(fed(Scatter(12), x).finalize())
    want = svd_measures(x)
    assert got["sigma1_share"] == pytest.approx(want["sigma1_share"], rel=1e-10)
    np.testing.assert_allclose(got["top_shares"], want["top_shares"], rtol=1e-9, atol=1e-14)
    assert got["eff_rank"] == pytest.approx(want["eff_rank"], rel=1e-10)
    assert got["total_variance"] == pytest.approx(np.var(x, axis=0).sum(), rel=1e-12)


def test_effective_rank_of_isotropic_spectrum():
    got = spectrum_measures(np.full(8, 2.0))
    assert got["eff_rank"] == pytest.approx(8.0, rel=1e-12)
    assert got["sigma1_share"] == pytest.approx(1 / 8)


def test_empty_scatter_refuses_eigenvalues():
    with pytest.raises(ValueError, match="no vectors"):
        Scatter(3).finalize()


def test_random_shard_merges_equal_one_pass():
    rng = np.random.default_rng(2)
    x = anisotropic(rng, 500, 9, offset=1e4)  # large mean: naive sums would cancel
    cuts = np.sort(rng.choice(np.arange(1, 500), size=6, replace=False))
    parts = [(fed(UnitSum(9), piece), fed(Scatter(9), piece)) for piece in np.split(x, cuts)]
    units, scatter = UnitSum(9), Scatter(9)
    for i in rng.permutation(len(parts)):
        units.merge(parts[i][0])
        scatter.merge(parts[i][1])
    one_units, one_scatter = fed(UnitSum(9), x), fed(Scatter(9), x)
    reference = (x - x.mean(axis=0)).T @ (x - x.mean(axis=0))
    assert scatter.count == one_scatter.count == 500
    np.testing.assert_allclose(scatter.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(scatter.scatter, reference, rtol=1e-9, atol=1e-9 * np.abs(reference).max())
    np.testing.assert_allclose(scatter.scatter, one_scatter.scatter, rtol=1e-9, atol=1e-9 * np.abs(reference).max())
    np.testing.assert_allclose(units.total, one_units.total, rtol=1e-12)
    assert units.finalize() == pytest.approx(brute_mean_cosine(x), rel=1e-10)


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 5))
    units, scatter = fed(UnitSum(5), x), fed(Scatter(5), x)
    centered = fed(UnitSum(5, center=x.mean(axis=0)), x)
    save(tmp_path / "part.npz", {"units": units, "scatter": scatter, "centered": centered})
    kinds = {"units": UnitSum, "scatter": Scatter, "centered": UnitSum}
    back = {name: load(tmp_path / "part.npz", name, kind) for name, kind in kinds.items()}
    assert back["units"].count == 30 and back["scatter"].count == 30 and back["units"].center is None
    np.testing.assert_array_equal(back["units"].total, units.total)
    np.testing.assert_array_equal(back["scatter"].scatter, scatter.scatter)
    np.testing.assert_array_equal(back["scatter"].mean, scatter.mean)
    np.testing.assert_array_equal(back["centered"].center, x.mean(axis=0))
    with pytest.raises(KeyError, match="missing"):
        load(tmp_path / "part.npz", "missing", UnitSum)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_streaming_from_store_equals_in_ram(tmp_path, dtype):
    rng = np.random.default_rng(5)
    n_layers, n_tokens, d = 3, 250, 6
    data = np.stack([anisotropic(rng, n_tokens, d, offset=2.0 * i) for i in range(n_layers)]).astype(dtype)
    array = create_store(tmp_path / "s.zarr", n_layers, n_tokens, d, dtype, 32, None, {})
    array[:] = data
    array = open_hidden(tmp_path / "s.zarr")
    mask = rng.random(n_tokens) < 0.8
    # Shards cut at chunks (32) while blocks are 64 tokens: the driver must honour ranges inside a block.
    ranges = [shard_range(n_tokens, 32, k, 3) for k in range(3)]
    first = [Feed("units", mask, lambda layer, d: UnitSum(d)), Feed("scatter", mask, lambda layer, d: Scatter(d))]
    parts = [dict(stream_layers(array, first, token_range=r, block_tokens=64)) for r in ranges]
    units = [merged(part[layer]["units"] for part in parts) for layer in range(n_layers)]
    scatter = [merged(part[layer]["scatter"] for part in parts) for layer in range(n_layers)]
    means = np.stack([s.mean for s in scatter])
    second = [Feed("centered", mask, lambda layer, d: UnitSum(d, means[layer]))]
    parts = [dict(stream_layers(array, second, token_range=r, block_tokens=64)) for r in ranges]
    centered = [merged(part[layer]["centered"] for part in parts) for layer in range(n_layers)]
    for layer in range(n_layers):
        x = data[layer].astype(np.float64)[mask]
        assert scatter[layer].count == mask.sum()
        assert units[layer].finalize() == pytest.approx(brute_mean_cosine(x), rel=1e-10)
        assert centered[layer].finalize() == pytest.approx(brute_mean_cosine(x - x.mean(axis=0)), rel=1e-9, abs=1e-13)
        got, want = spectrum_measures(scatter[layer].finalize()), svd_measures(x)
        assert got["sigma1_share"] == pytest.approx(want["sigma1_share"], rel=1e-10)
        assert got["eff_rank"] == pytest.approx(want["eff_rank"], rel=1e-10)
