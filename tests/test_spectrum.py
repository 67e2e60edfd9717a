"""Anisotropy accumulators against brute-force float64 references on small data."""

import numpy as np
import pytest

from layergeom.spectrum import (
    Scatter,
    UnitSum,
    layer_centered_units,
    layer_moments,
    load_accumulators,
    save_accumulators,
    shard_mask,
    spectrum_measures,
)
from layergeom.io.store import create_store, open_hidden


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


def test_mean_cosine_matches_pairwise():
    rng = np.random.default_rng(0)
    x = anisotropic(rng, 60, 7)
    x[5] = 0.0  # no direction: left out of the pairs
    units = UnitSum.empty(7)
    units.add(x)
    assert units.count == 59
    assert units.mean_cosine() == pytest.approx(brute_mean_cosine(x), rel=1e-12)
    centered = UnitSum.empty(7)
    centered.add(x, center=x.mean(axis=0))
    assert centered.mean_cosine() == pytest.approx(brute_mean_cosine(x - x.mean(axis=0)), rel=1e-10)


def test_spectrum_matches_svd():
    rng = np.random.default_rng(1)
    x = anisotropic(rng, 200, 12)
    scatter = Scatter.empty(12)
    scatter.add(x)
    got = spectrum_measures(scatter.eigenvalues())
    want = svd_measures(x)
    assert got["sigma1_share"] == pytest.approx(want["sigma1_share"], rel=1e-10)
    np.testing.assert_allclose(got["top_shares"], want["top_shares"], rtol=1e-9, atol=1e-14)
    assert got["eff_rank"] == pytest.approx(want["eff_rank"], rel=1e-10)
    assert got["total_variance"] == pytest.approx(np.var(x, axis=0).sum(), rel=1e-12)


def test_effective_rank_of_isotropic_spectrum():
    got = spectrum_measures(np.full(8, 2.0))
    assert got["eff_rank"] == pytest.approx(8.0, rel=1e-12)
    assert got["sigma1_share"] == pytest.approx(1 / 8)


def test_random_shard_merges_equal_one_pass():
    rng = np.random.default_rng(2)
    x = anisotropic(rng, 500, 9, offset=1e4)  # large mean: naive sums would cancel
    cuts = np.sort(rng.choice(np.arange(1, 500), size=6, replace=False))
    parts = []
    for piece in np.split(x, cuts):
        units, scatter = UnitSum.empty(9), Scatter.empty(9)
        units.add(piece)
        scatter.add(piece)
        parts.append((units, scatter))
    units, scatter = UnitSum.empty(9), Scatter.empty(9)
    for i in rng.permutation(len(parts)):
        units, scatter = units.merge(parts[i][0]), scatter.merge(parts[i][1])
    one_units, one_scatter = UnitSum.empty(9), Scatter.empty(9)
    one_units.add(x)
    one_scatter.add(x)
    reference = (x - x.mean(axis=0)).T @ (x - x.mean(axis=0))
    assert scatter.count == one_scatter.count == 500
    np.testing.assert_allclose(scatter.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(scatter.scatter, reference, rtol=1e-9, atol=1e-9 * np.abs(reference).max())
    np.testing.assert_allclose(scatter.scatter, one_scatter.scatter, rtol=1e-9, atol=1e-9 * np.abs(reference).max())
    np.testing.assert_allclose(units.total, one_units.total, rtol=1e-12)
    assert units.mean_cosine() == pytest.approx(brute_mean_cosine(x), rel=1e-10)


def test_shard_masks_partition_the_mask():
    rng = np.random.default_rng(3)
    mask = rng.random(103) < 0.7
    pieces = [shard_mask(mask, 10, k, 4) for k in range(4)]
    assert np.array_equal(np.sum(pieces, axis=0), mask.astype(int))
    starts = []
    for k in range(4):
        on = np.flatnonzero(shard_mask(np.ones(103, dtype=bool), 10, k, 4))
        assert np.array_equal(on, np.arange(on[0], on[-1] + 1))  # contiguous
        starts.append(on[0])
    assert starts[0] == 0 and all(s % 10 == 0 for s in starts)
    with pytest.raises(ValueError):
        shard_mask(mask, 10, 4, 4)


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 5))
    units, scatter = UnitSum.empty(5), Scatter.empty(5)
    units.add(x)
    scatter.add(x)
    save_accumulators(tmp_path / "part.npz", {"units": units, "scatter": scatter})
    back = load_accumulators(tmp_path / "part.npz")
    assert back["units"].count == 30 and back["scatter"].count == 30
    np.testing.assert_array_equal(back["units"].total, units.total)
    np.testing.assert_array_equal(back["scatter"].scatter, scatter.scatter)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_streaming_from_store_equals_in_ram(tmp_path, dtype):
    rng = np.random.default_rng(5)
    n_layers, n_tokens, d = 3, 250, 6
    data = np.stack([anisotropic(rng, n_tokens, d, offset=2.0 * i) for i in range(n_layers)]).astype(dtype)
    array = create_store(tmp_path / "s.zarr", n_layers, n_tokens, d, dtype, 32, None, {})
    array[:] = data
    array = open_hidden(tmp_path / "s.zarr")
    mask = rng.random(n_tokens) < 0.8
    for layer in range(n_layers):
        x = data[layer].astype(np.float64)[mask]
        units, scatter = UnitSum.empty(d), Scatter.empty(d)
        centered = UnitSum.empty(d)
        for k in range(3):
            part = shard_mask(mask, 32, k, 3)
            u, s = layer_moments(array, layer, part, block_tokens=64)
            units, scatter = units.merge(u), scatter.merge(s)
        for k in range(3):
            part = shard_mask(mask, 32, k, 3)
            centered = centered.merge(layer_centered_units(array, layer, part, scatter.mean, block_tokens=64))
        assert scatter.count == mask.sum()
        assert units.mean_cosine() == pytest.approx(brute_mean_cosine(x), rel=1e-10)
        assert centered.mean_cosine() == pytest.approx(brute_mean_cosine(x - x.mean(axis=0)), rel=1e-9, abs=1e-13)
        got, want = spectrum_measures(scatter.eigenvalues()), svd_measures(x)
        assert got["sigma1_share"] == pytest.approx(want["sigma1_share"], rel=1e-10)
        assert got["eff_rank"] == pytest.approx(want["eff_rank"], rel=1e-10)
