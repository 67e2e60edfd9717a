"""Surface type keys and the type-mean PCA of the norm-variance analysis against float64 in-RAM references."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from layergeom.analyses.norm_variance.metrics import Exclusions, analyse_layer, combine, type_strings
from layergeom.analyses.norm_variance.types import mean_pca, regroup, surface, surface_ids
from layergeom.stats.moments import chunk_moments

PIECES = ["the", "Ġthe", "##the", "▁the", "a", "Ġa", "##", "Ġ", "cat", "▁cat", "dog"]


def test_surface_strips_one_leading_marker():
    assert [surface(p) for p in PIECES] == ["the"] * 4 + ["a", "a", "##", "Ġ", "cat", "cat", "dog"]
    ids = np.array([5, 1, 9, 3, 2, 8, 4, 6, 7, 10, 0])
    assert surface_ids(ids, PIECES).tolist() == [1, 1, 1, 1, 2, 2, 4, 6, 7, 7, 0]


def test_surface_moments_equal_two_pass_reference():
    rng = np.random.default_rng(3)
    ids_of_piece = np.arange(len(PIECES))
    rows = rng.integers(0, len(PIECES), size=400)
    x = rng.normal(0.0, 1.0, size=(400, 6)) + rng.normal(0.0, 30.0, size=(len(PIECES), 6))[rows]
    parts = [chunk_moments(x[:150], rows[:150]), chunk_moments(x[150:], rows[150:])]
    merged = regroup(parts[0], surface_ids(ids_of_piece, PIECES)[parts[0].ids])
    second = regroup(parts[1], surface_ids(ids_of_piece, PIECES)[parts[1].ids])
    result = combine([merged, second])
    q, m, v = result.qmv()
    surfaces = np.array([surface(PIECES[r]) for r in rows])
    for key, n, qk, mk, vk in zip(result.ids, result.n, q, m, v):
        group = x[surfaces == surface(PIECES[key])]
        mean = group.mean(axis=0)
        assert n == len(group)
        assert qk == pytest.approx((group**2).sum(axis=1).mean(), rel=1e-10)
        assert mk == pytest.approx(mean @ mean, rel=1e-10)
        assert vk == pytest.approx(((group - mean) ** 2).sum(axis=1).mean(), rel=1e-10)
        assert qk == pytest.approx(mk + vk, rel=1e-10)
    assert len(result) == len({surface(p) for p in PIECES})


def test_analyse_layer_by_surface_keys_types_by_smallest_id():
    rng = np.random.default_rng(4)
    rows = rng.integers(0, len(PIECES), size=600)
    x = rng.normal(size=(600, 5)) + 10.0 * rng.normal(size=(len(PIECES), 5))[rows]
    first = rng.random(600) < 0.1
    keyed = chunk_moments(x, 2 * rows + first)
    tokens = pl.DataFrame({"token_id": np.arange(len(PIECES)), "token": PIECES})
    strings, type_of = type_strings(tokens, "surface")
    result = analyse_layer(keyed, 1, 1, 10**6, Exclusions((), True, None), 3, type_of)
    everything = result.types.filter(variant="all")
    assert everything["token_id"].to_list() == [0, 4, 6, 7, 8, 10]
    surfaces = np.array([surface(PIECES[r]) for r in rows])
    for token_id, n, q in zip(everything["token_id"], everything["n"], everything["Q"]):
        group = x[surfaces == surface(PIECES[token_id])]
        assert n == len(group) and q == pytest.approx((group**2).sum(axis=1).mean(), rel=1e-10)
    assert strings.filter(token_id=1)["token"][0] == "the"


def test_mean_pca_matches_covariance_eigenvectors():
    rng = np.random.default_rng(5)
    means = rng.normal(size=(40, 7)) * np.array([9.0, 4.0, 1, 1, 1, 1, 1])
    coords, ratios = mean_pca(means)
    centered = means - means.mean(axis=0)
    values, vectors = np.linalg.eigh(centered.T @ centered)
    top = vectors[:, ::-1][:, :2]
    top *= np.sign(top[np.abs(top).argmax(axis=0), [0, 1]])
    np.testing.assert_allclose(coords, centered @ top, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ratios, values[::-1][:2] / values.sum(), rtol=1e-10)
    assert np.isnan(mean_pca(means[:1])[0]).all()
    wide_coords, wide_ratios = mean_pca(means[:5])  # fewer types than dimensions: the k x k Gram
    centered = means[:5] - means[:5].mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    vt *= np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
    np.testing.assert_allclose(wide_coords, centered @ vt[:2].T, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(wide_ratios, s[:2] ** 2 / (s**2).sum(), rtol=1e-10)
