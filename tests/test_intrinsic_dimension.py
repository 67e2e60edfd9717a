"""Intrinsic dimension: exact neighbours, synthetic manifolds, scikit-dimension and llm-microscope agreement,
duplicates."""

import warnings
from contextlib import contextmanager

import numpy as np
import polars as pl
import pytest
import skdim
import torch
from peers import microscope_functions
from scipy.spatial.distance import cdist

from layergeom.analyses.anisotropy.accumulate import SAMPLE, sample_feeds
from layergeom.analyses.anisotropy.intrinsic_dimension import (
    SL_EPS,
    distinct_rows,
    estimate,
    levina_bickel,
    nearest_distances,
    sl_from_ratios,
    sl_kept,
    sl_ratios,
    subsample_rows,
    twonn_from_ratios,
)
from layergeom.analyses.anisotropy.metrics import spectrum_measures
from layergeom.io.store import create_store, open_hidden
from layergeom.stats.scatter import Scatter
from layergeom.stream.driver import stream_layers


def embed(points: np.ndarray, ambient: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Isometric embedding into R^ambient by a random orthonormal frame, plus Gaussian noise."""
    frame, _ = np.linalg.qr(rng.standard_normal((ambient, points.shape[1])))
    return points @ frame.T + noise * rng.standard_normal((len(points), ambient))


def plane(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points of the unit square: a 2-dimensional manifold in R^100."""
    return embed(rng.random((n, 2)), 100, 1e-4, rng)


def sphere5(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points of the unit sphere S^5 = {z in R^6 : |z| = 1}, a 5-dimensional manifold, in R^100."""
    z = rng.standard_normal((n, 6))
    return embed(z / np.linalg.norm(z, axis=1, keepdims=True), 100, 1e-4, rng)


def test_nearest_distances_are_exact():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 20)) + 5.0
    x[10] = x[11]  # a duplicate pair
    x[12] *= 1e3  # a point of huge norm loosens the screening bound
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    want = np.sort(full, axis=1)[:, :7]
    got = nearest_distances(x, 7, block=37)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert got[10, 0] == 0.0 and got[11, 0] == 0.0
    with pytest.raises(ValueError):
        nearest_distances(x, 300)


@pytest.mark.parametrize("make, dim", [(plane, 2.0), (sphere5, 5.0)])
def test_twonn_recovers_manifold_dimension(make, dim):
    result = estimate(make(2000, np.random.default_rng(1)), n_bootstrap=100)
    assert result.twonn == pytest.approx(dim, rel=0.1)
    assert result.twonn_mle == pytest.approx(dim, rel=0.1)
    assert result.levina_bickel == pytest.approx(dim, rel=0.15)
    assert result.twonn_lo <= result.twonn <= result.twonn_hi
    assert result.twonn_mle_lo <= result.twonn_mle <= result.twonn_mle_hi
    assert result.n_used == result.n_points == 2000 and result.n_duplicates == 0


@pytest.mark.parametrize("discard", [0.1, 0.01, 0.5])
def test_twonn_agrees_with_skdim(discard):
    x = sphere5(1500, np.random.default_rng(2))
    ours = estimate(x, discard_fraction=discard, n_bootstrap=10)
    linear = skdim.id.TwoNN(discard_fraction=discard).fit(x).dimension_
    mle = skdim.id.TwoNN(discard_fraction=discard, method="mle").fit(x).dimension_
    assert ours.twonn == pytest.approx(linear, rel=1e-6)
    assert ours.twonn_mle == pytest.approx(mle, rel=1e-6)


def test_levina_bickel_agrees_with_skdim_mle():
    x = sphere5(1000, np.random.default_rng(3))
    ours = levina_bickel(nearest_distances(x, 20))
    theirs = skdim.id.MLE().fit(x, n_neighbors=20).dimension_
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_twonn_batched_equals_single():
    rng = np.random.default_rng(4)
    mu = 1 + rng.random((3, 50))
    slope, mle = twonn_from_ratios(mu, 0.1)
    for i in range(3):
        s, m = twonn_from_ratios(mu[i], 0.1)
        assert slope[i] == pytest.approx(s, rel=1e-14) and mle[i] == pytest.approx(m, rel=1e-14)
    with pytest.raises(ValueError):
        twonn_from_ratios(mu[0, :2], 0.5)
    with pytest.raises(ValueError):
        twonn_from_ratios(mu[0], 0.0)


def test_duplicates_give_finite_estimates():
    rng = np.random.default_rng(5)
    x = plane(600, rng)
    x = np.concatenate([x, x[:50], x[:5]])  # 50 points twice, 5 of them three times
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero, no log of zero
        result = estimate(x, n_bootstrap=20)
    values = [result.twonn, result.twonn_lo, result.twonn_hi, result.twonn_mle, result.levina_bickel]
    assert np.all(np.isfinite(values))
    # one copy of each point is kept: 50 + 5 removed copies; n_points stays the sample size
    assert result.n_duplicates == 55 and result.n_used == 600 and result.n_points == len(x)
    assert result.twonn == pytest.approx(2.0, rel=0.15)


def test_distinct_rows_keeps_the_first_copy_in_row_order():
    x = np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [0.0, 0.0], [1.0, 2.0 + 1e-15]])
    np.testing.assert_array_equal(distinct_rows(x), [0, 1, 3, 5])  # equality is exact, no tolerance


@pytest.mark.parametrize("discard", [0.1, 0.5])
def test_twonn_with_duplicates_agrees_with_skdim_on_distinct_points(discard):
    """Same estimate as scikit-dimension on np.unique(x, axis=0): one copy of each point kept (DADApy's rule)."""
    rng = np.random.default_rng(7)
    base = sphere5(800, rng)
    x = np.concatenate([base, base[:60], base[10:20], base[300:340]])
    x = x[rng.permutation(len(x))]
    unique = np.unique(x, axis=0)
    assert len(unique) == 800
    ours = estimate(x, discard_fraction=discard, n_bootstrap=10)
    linear = skdim.id.TwoNN(discard_fraction=discard).fit(unique).dimension_
    mle = skdim.id.TwoNN(discard_fraction=discard, method="mle").fit(unique).dimension_
    assert abs(ours.twonn - linear) <= 1e-10
    assert abs(ours.twonn_mle - mle) <= 1e-10
    assert ours.n_duplicates == 110 and ours.n_used == 800 and ours.n_points == 910
    assert ours.levina_bickel == pytest.approx(skdim.id.MLE().fit(unique, n_neighbors=20).dimension_, rel=1e-6)
    # scikit-dimension 0.5.0 on the raw rows drops every point at distance zero (all copies), while the
    # copies still count as neighbours of the others: a different rule, which we do not follow
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = skdim.id.TwoNN(discard_fraction=discard).fit(x).dimension_
    assert abs(raw - linear) > 1e-6


def test_bootstrap_is_seeded():
    x = plane(400, np.random.default_rng(6))
    a, b = estimate(x, n_bootstrap=50, seed=3), estimate(x, n_bootstrap=50, seed=3)
    c = estimate(x, n_bootstrap=50, seed=4)
    assert a == b and (a.twonn_lo, a.twonn_hi) != (c.twonn_lo, c.twonn_hi)


def test_subsample_rows_first_and_random():
    # rows stored out of sequence order; row 0 is special
    tokens = pl.DataFrame(
        {"seq_id": [1, 1, 0, 0, 2, 2], "position": [1, 0, 0, 1, 0, 1], "is_special": [True] + [False] * 5}
    )
    mask = ~tokens["is_special"].to_numpy()
    assert subsample_rows(tokens, mask, 3, "first").tolist() == [1, 2, 3]
    picked = subsample_rows(tokens, mask, 3, "random", seed=7)
    assert len(picked) == 3 and mask[picked].all() and np.all(np.diff(picked) > 0)
    assert np.array_equal(picked, subsample_rows(tokens, mask, 3, "random", seed=7))
    assert len(subsample_rows(tokens, mask, 99, "random")) == 5
    with pytest.raises(ValueError):
        subsample_rows(tokens, mask, 3, "last")


def test_estimate_from_store_equals_in_ram(tmp_path):
    rng = np.random.default_rng(8)
    data = np.stack([sphere5(700, rng), plane(700, rng)]).astype(np.float32)
    array = create_store(tmp_path / "s.zarr", 2, 700, 100, "float32", 64, None, {})
    array[:] = data
    array = open_hidden(tmp_path / "s.zarr")
    rows = np.sort(rng.choice(700, size=500, replace=False))
    sampled = dict(stream_layers(array, sample_feeds(700, rows), block_tokens=128))
    for layer in range(2):
        streamed = sampled[layer][SAMPLE].finalize()
        np.testing.assert_array_equal(streamed, data[layer, rows].astype(np.float64))
        assert estimate(streamed, n_bootstrap=20) == estimate(data[layer, rows].astype(np.float64), n_bootstrap=20)


@contextmanager
def torch_default_dtype(dtype: torch.dtype):
    """Torch's default dtype set for the block, restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def sl_clouds() -> dict[str, np.ndarray]:
    """Points on S^5 off the origin: plain, with exact copies, and with near-copies on both sides of SL_EPS."""
    rng = np.random.default_rng(9)
    plain = sphere5(450, rng) + 3.0
    copies = np.concatenate([plain, plain[:40], plain[:5]])  # 35 points twice, 5 three times
    near = np.concatenate([plain, plain[100:110] + 1e-12, plain[200:220] + 1e-5 * rng.standard_normal((20, 100))])
    return {name: x[rng.permutation(len(x))] for name, x in [("plain", plain), ("copies", copies), ("near", near)]}


def brute_force_dropped(x: np.ndarray) -> int:
    """Points whose [SL] ratio is dropped, from the full distance matrix of the centred cloud of mean norm 1."""
    centred = x - x.mean(axis=0)
    full = cdist(centred, centred) / np.linalg.norm(centred, axis=1).mean()
    np.fill_diagonal(full, np.inf)
    r1, r2 = np.sort(full, axis=1)[:, :2].T
    return int(((r1 < SL_EPS) | (r2 <= (1 + SL_EPS) * r1)).sum())


def test_sl_estimate_equals_llm_microscope():
    """Ours against [SL]'s own intrinsic_dimension, float64 throughout (torch's default dtype float64)."""
    functions = microscope_functions()
    for name, x in sl_clouds().items():
        mu = sl_ratios(x, block=64)
        with torch_default_dtype(torch.float64):
            theirs = functions.intrinsic_dimension(torch.from_numpy(x), "cpu")
        assert abs(float(sl_from_ratios(mu)) - theirs) <= 1e-10 * theirs, name
        dropped = len(x) - int(sl_kept(mu).sum())
        assert dropped == brute_force_dropped(x), name
        assert (dropped == 0) == (name == "plain") and dropped >= {"plain": 0, "copies": 85, "near": 20}[name], name
    # As shipped (default dtype float32), their F = arange / N and -log(1 - F) are float32: ~1e-8 apart.
    theirs_f32 = functions.intrinsic_dimension(torch.from_numpy(x), "cpu")
    assert float(sl_from_ratios(mu)) == pytest.approx(theirs_f32, rel=1e-7)


def test_sigma1_share_equals_llm_microscope_anisotropy():
    x = sl_clouds()["plain"]
    ours = spectrum_measures(Scatter.of(x).finalize())["sigma1_share"]
    theirs = microscope_functions().calculate_anisotropy_torch(torch.from_numpy(x))
    assert abs(ours - theirs) <= 1e-10 * theirs


def test_sl_from_ratios_batched_equals_single_and_edge_cases():
    rng = np.random.default_rng(10)
    mu = 1 + rng.random((3, 60))
    mu[:, :7] = [-1.0, 1.0, 1 + SL_EPS / 2, -1.0, 1.0, 1.0, -1.0]  # dropped ratios, different counts per row
    mu[1, :3] = 2.0
    batched = sl_from_ratios(mu)
    for i in range(3):
        assert batched[i] == sl_from_ratios(mu[i])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(sl_from_ratios(np.array([-1.0, 1.0, 1.5, 2.0])))  # 2 kept: no point to fit


def test_estimate_reports_sl_with_interval():
    x = sl_clouds()["copies"]
    result = estimate(x, n_bootstrap=50)
    assert result.sl == float(sl_from_ratios(sl_ratios(x)))
    assert result.sl_lo <= result.sl <= result.sl_hi
    assert result.sl_dropped == brute_force_dropped(x)
