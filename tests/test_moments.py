"""Grouped moments against a float64 two-pass in-RAM reference, on data with M >> V."""

from __future__ import annotations

import numpy as np
import pytest

from layergeom.stats.moments import GroupedMoments, Moments, chunk_moments
from layergeom.stats.protocol import load, save

RTOL = 1e-10


def far_from_origin(rng: np.random.Generator, rows: int = 3000, d: int = 24, types: int = 60):
    """Rows whose type means are ~1e4 times their spread (M/V ~ 1e8), with Zipf-like counts."""
    centers = rng.normal(0.0, 100.0, size=(types, d))
    spread = 10.0 ** rng.uniform(-2.0, 0.0, size=types)
    keys = np.minimum(rng.zipf(1.5, size=rows), types) - 1
    keys = rng.permutation(types)[keys] * 7 + 3  # sparse, unsorted keys
    x = centers[(keys - 3) // 7] + rng.normal(size=(rows, d)) * spread[(keys - 3) // 7, None]
    return x, keys


def reference(x: np.ndarray, keys: np.ndarray) -> dict[int, tuple[int, float, float, float]]:
    """Two-pass float64 n, Q, M, V per key."""
    out = {}
    for key in np.unique(keys):
        rows = x[keys == key]
        mean = rows.mean(axis=0)
        q = float(np.mean(np.sum(rows * rows, axis=1)))
        v = float(np.mean(np.sum((rows - mean) ** 2, axis=1)))
        out[int(key)] = (len(rows), q, float(mean @ mean), v)
    return out


def assert_matches(moments: Moments, ref: dict) -> None:
    """Counts equal, and Q, M, V equal to RTOL relative."""
    assert moments.ids.tolist() == sorted(ref)
    q, m, v = moments.qmv()
    expected = np.array([ref[k] for k in moments.ids.tolist()])
    np.testing.assert_array_equal(moments.n, expected[:, 0].astype(np.int64))
    np.testing.assert_allclose(q, expected[:, 1], rtol=RTOL, atol=0)
    np.testing.assert_allclose(m, expected[:, 2], rtol=RTOL, atol=0)
    np.testing.assert_allclose(v, expected[:, 3], rtol=RTOL, atol=0)


def streamed(x: np.ndarray, keys: np.ndarray, bounds: list[int]) -> GroupedMoments:
    """Accumulate rows chunk by chunk between consecutive ``bounds``, grouped by ``keys`` of their rows."""
    acc = GroupedMoments(x.shape[1], keys)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        acc.update(x[lo:hi], np.arange(lo, hi))
    return acc


def random_bounds(rng: np.random.Generator, rows: int, pieces: int) -> list[int]:
    """Sorted random cut points 0 = b0 < ... < b_pieces = rows."""
    cuts = np.sort(rng.choice(np.arange(1, rows), size=pieces - 1, replace=False))
    return [0, *cuts.tolist(), rows]


def test_chunk_moments_match_two_pass_reference_when_mean_dominates():
    rng = np.random.default_rng(1)
    x, keys = far_from_origin(rng)
    ref = reference(x, keys)
    moments = chunk_moments(x, keys)
    assert_matches(moments, ref)
    # The data does expose the cancellation of the naive V = Q - M.
    q, m, v = moments.qmv()
    several = moments.n > 1
    naive_error = np.max(np.abs((q - m) - v)[several] / v[several])
    assert naive_error > 100 * RTOL


def test_streaming_in_chunks_matches_reference():
    rng = np.random.default_rng(2)
    x, keys = far_from_origin(rng)
    acc = streamed(x, keys, random_bounds(rng, len(keys), 17))
    assert_matches(acc.moments(), reference(x, keys))


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_any_shard_split_merged_in_any_order_equals_one_pass(seed):
    rng = np.random.default_rng(seed)
    x, keys = far_from_origin(rng, rows=2000)
    one_pass = streamed(x, keys, [0, len(keys)]).moments()
    bounds = random_bounds(rng, len(keys), int(rng.integers(2, 9)))
    shards = [
        streamed(x[lo:hi], keys[lo:hi], random_bounds(rng, hi - lo, min(4, hi - lo))).moments()
        if hi - lo > 4
        else chunk_moments(x[lo:hi], keys[lo:hi])
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
    for order in (rng.permutation(len(shards)) for _ in range(3)):
        merged = GroupedMoments(x.shape[1])
        for i in order:
            merged.merge(shards[i])
        got = merged.moments()
        np.testing.assert_array_equal(got.ids, one_pass.ids)
        np.testing.assert_array_equal(got.n, one_pass.n)
        for a, b in zip(got.qmv(), one_pass.qmv()):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)
        np.testing.assert_allclose(got.mean, one_pass.mean, rtol=RTOL, atol=1e-12)


def test_tree_merge_of_accumulators_equals_sequential_merge():
    rng = np.random.default_rng(6)
    x, keys = far_from_origin(rng, rows=1200)
    parts = [streamed(x[i::4], keys[i::4], [0, len(keys[i::4])]) for i in range(4)]
    left, right = parts[0], parts[2]
    left.merge(parts[1])
    right.merge(parts[3])
    right.merge(left)
    assert_matches(right.moments(), reference(x, keys))


def test_identity_q_equals_m_plus_v():
    rng = np.random.default_rng(7)
    x, keys = far_from_origin(rng)
    q, m, v = streamed(x, keys, random_bounds(rng, len(keys), 9)).finalize().qmv()
    assert np.max(np.abs(q - m - v) / q) < 1e-13


def test_save_load_roundtrip_and_resume(tmp_path):
    rng = np.random.default_rng(8)
    x, keys = far_from_origin(rng, rows=800)
    first = streamed(x, keys, [0, 250, 500])
    save(tmp_path / "part.npz", {"moments": first})
    loaded = load(tmp_path / "part.npz", "moments", GroupedMoments)
    for name in ("ids", "n", "mean", "s", "q"):
        np.testing.assert_array_equal(getattr(loaded.finalize(), name), getattr(first.finalize(), name))
    with pytest.raises(ValueError, match="partial"):
        loaded.update(x[500:], np.arange(500, 800))  # a loaded partial has no row keys
    resumed = streamed(x, keys, [500, 800])
    resumed.merge(loaded)
    assert_matches(resumed.moments(), reference(x, keys))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_empty_chunks_and_errors():
    acc = GroupedMoments(3, np.array([5, 5]))
    acc.update(np.empty((0, 3)), np.empty(0, np.int64))
    assert len(acc) == 0 and acc.moments().mean.shape == (0, 3)
    acc.update(np.ones((2, 3)), np.array([0, 1]))
    assert acc.moments().ids.tolist() == [5]
    assert acc.moments().n.tolist() == [2] and acc.moments().s.tolist() == [0.0]
    with pytest.raises(ValueError, match="dimension"):
        acc.merge(chunk_moments(np.ones((1, 4)), np.array([1])))
    with pytest.raises(ValueError, match="shape"):
        chunk_moments(np.ones((3, 2)), np.array([1, 2]))


def test_many_new_groups_grow_storage():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(5000, 4))
    keys = rng.integers(0, 10**12, size=5000)
    acc = streamed(x, keys, list(range(0, 5001, 250)))
    assert_matches(acc.moments(), reference(x, keys))
