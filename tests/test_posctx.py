"""Position/context decomposition math against float64 in-RAM references."""

import numpy as np
import pytest
import scipy.fft

from layergeom.analyses.posctx.accumulate import Decomposition, PosCtxSums, decompose
from layergeom.analyses.posctx.design import Design
from layergeom.analyses.posctx.metrics import (
    Settings,
    dct_lowfreq_share,
    hidden_operator_norm,
    layer_metrics,
    normalized_gram,
    operator_norms,
    screenot_bound,
    screenot_rank,
    stable_rank,
    topic_codes,
    topic_cosines,
    variance_shares,
)
from layergeom.stats.scatter import Scatter


def planted(n_ctx=12, n_pos=9, d=7, noise=0.1, seed=0, offset=5.0):
    """h[c, t] = mu + pos_t + ctx_c + noise with pos and ctx summing to zero; returns parts too."""
    rng = np.random.default_rng(seed)
    mu = offset * rng.standard_normal(d)
    pos = rng.standard_normal((n_pos, d))
    pos -= pos.mean(axis=0)
    ctx = rng.standard_normal((n_ctx, d))
    ctx -= ctx.mean(axis=0)
    eps = noise * rng.standard_normal((n_ctx, n_pos, d))
    eps -= eps.mean(axis=0, keepdims=True)
    eps -= eps.mean(axis=1, keepdims=True)
    return mu + pos[None] + ctx[:, None] + eps, mu, pos, ctx


def full_grid(n_ctx: int, n_pos: int) -> Design:
    """The design of a complete grid stored context by context: row c * n_pos + t is (c, t)."""
    ci, pi = np.meshgrid(np.arange(n_ctx), np.arange(n_pos), indexing="ij")
    return Design(ci.ravel(), pi.ravel(), np.arange(n_ctx), np.arange(n_pos), [None] * n_ctx, 0)


def stream(h: np.ndarray, n_blocks: int = 4, seed: int = 1) -> Decomposition:
    """Accumulate h (C, T, d) in shuffled token order over several blocks and two merged shards."""
    n_ctx, n_pos, d = h.shape
    design = full_grid(n_ctx, n_pos)
    values = h.reshape(-1, d)
    order = np.random.default_rng(seed).permutation(values.shape[0])
    shards = [(PosCtxSums(n_ctx, n_pos, d, design), Scatter(d)) for _ in range(2)]
    for k, block in enumerate(np.array_split(order, n_blocks)):
        for acc in shards[k % 2]:
            acc.update(values[block], block)
    sums, scatter = shards[0]
    sums.merge(shards[1][0])
    scatter.merge(shards[1][1])
    return decompose(sums, scatter)


def test_planted_components_come_back():
    h, mu, pos, ctx = planted()
    dec = stream(h)
    np.testing.assert_allclose(dec.mu, mu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dec.pos, pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dec.ctx, ctx, rtol=0, atol=1e-12)


def test_sum_of_squares_identity_against_direct():
    h = np.random.default_rng(3).standard_normal((10, 8, 6)) * 2 + 30.0
    dec = stream(h)
    mu = h.mean(axis=(0, 1))
    pos = h.mean(axis=0) - mu
    ctx = h.mean(axis=1) - mu
    resid = h - mu - pos[None] - ctx[:, None]
    total = np.sum((h - mu) ** 2)
    assert dec.ss_total == pytest.approx(total, rel=1e-12)
    pos_share, ctx_share, resid_share = variance_shares(dec)
    assert resid_share * dec.ss_total == pytest.approx(np.sum(resid**2), rel=1e-10)
    assert pos_share * total == pytest.approx(h.shape[0] * np.sum(pos**2), rel=1e-10)
    assert ctx_share * total == pytest.approx(h.shape[1] * np.sum(ctx**2), rel=1e-10)
    assert pos_share + ctx_share + resid_share == pytest.approx(1.0, abs=1e-15)
    scatter = (h - mu).reshape(-1, h.shape[2])
    np.testing.assert_allclose(dec.scatter, scatter.T @ scatter, rtol=1e-11, atol=1e-9)


def test_operator_norms_equal_numpy_on_full_matrices():
    h, *_ = planted(n_ctx=6, n_pos=5, d=4, noise=0.5)
    dec = stream(h)
    n_ctx, n_pos, d = h.shape
    pos_full = np.tile(dec.pos, (n_ctx, 1))
    mean_effect = (dec.pos[None] + dec.ctx[:, None]).reshape(-1, d)
    centered = (h - h.mean(axis=(0, 1))).reshape(-1, d)
    pos_op, mean_op, total_op = operator_norms(dec)
    assert pos_op == pytest.approx(np.linalg.norm(pos_full, 2), rel=1e-12)
    assert mean_op == pytest.approx(np.linalg.norm(mean_effect - mean_effect.mean(0), 2), rel=1e-12)
    assert total_op == pytest.approx(np.linalg.norm(centered, 2), rel=1e-12)


def test_pos_rel_norm_hidden_against_stacked_states():
    """||1_C (x) P||_op / ||H||_op with H the uncentered grid states, brute force in float64."""
    h, *_ = planted(n_ctx=8, n_pos=6, d=5, noise=0.3, offset=3.0)
    dec = stream(h)
    n_ctx, n_pos, d = h.shape
    stacked = h.reshape(-1, d)
    pos = h.mean(axis=0) - stacked.mean(axis=0)
    pos_stacked = np.tile(pos, (n_ctx, 1))
    expected = np.linalg.norm(pos_stacked, 2) / np.linalg.norm(stacked, 2)
    assert np.linalg.norm(pos_stacked, 2) == pytest.approx(np.sqrt(n_ctx) * np.linalg.norm(pos, 2), rel=1e-12)
    assert hidden_operator_norm(dec) == pytest.approx(np.linalg.norm(stacked, 2), rel=1e-12)
    row = layer_metrics(dec, topic_codes([None] * n_ctx)[0], Settings(smoothness_cutoff=3))
    assert abs(row["pos_rel_norm_hidden"] - expected) <= 1e-10
    # the reference code's decomposition: pos + cvec + mu with cvec = h - pos - mu is h itself
    cvec = stacked - pos_stacked - stacked.mean(axis=0)
    assert np.linalg.norm(pos_stacked + cvec + stacked.mean(axis=0), 2) == pytest.approx(
        expected**-1 * np.linalg.norm(pos_stacked, 2)
    )


def test_stable_rank_of_planted_rank_two():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((30, 2)))
    v, _ = np.linalg.qr(rng.standard_normal((20, 2)))
    m = u @ np.diag([3.0, 2.0]) @ v.T
    s = np.linalg.svd(m, compute_uv=False)
    assert stable_rank(s) == pytest.approx(1 + 4 / 9, rel=1e-12)
    assert stable_rank(np.linalg.svd(u[:, :1] @ v[:, :1].T * 5, compute_uv=False)) == pytest.approx(1, rel=1e-12)


def test_dct_energy_of_constant_gram_is_all_lowest_frequency():
    gram = np.ones((16, 16))
    coef = scipy.fft.dctn(gram, type=2, norm="ortho")
    assert coef[0, 0] ** 2 == pytest.approx(np.sum(coef**2))
    assert dct_lowfreq_share(gram, 1) == pytest.approx(1.0, abs=1e-14)
    aligned = np.outer(np.arange(1.0, 17.0), np.ones(5))  # every pos_t on one ray: Gram all ones
    assert dct_lowfreq_share(normalized_gram(aligned), 1) == pytest.approx(1.0, abs=1e-14)
    assert dct_lowfreq_share(np.eye(16), 4) == pytest.approx(4 / 16, rel=1e-12)  # DCT of I is I


def test_screenot_recovers_planted_rank_three():
    rng = np.random.default_rng(0)
    n, d = 100, 200
    u, _ = np.linalg.qr(rng.standard_normal((n, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((d, 3)))
    noise = rng.standard_normal((n, d)) / np.sqrt(d)
    m = u @ np.diag([10.0, 8.0, 6.0]) @ v.T + noise
    assert screenot_rank(m, screenot_bound(m.shape, 20)) == 3
    assert screenot_bound((15, 400), 20) == 6


def test_topic_cosines_within_and_across():
    x = np.array([[1.0, 0], [2.0, 0], [0, 1.0], [0, -3.0], [1.0, 1.0]])
    codes, names = topic_codes(["a", "a", "b", "b", None])
    assert names == ["a", "b"]
    within, across = topic_cosines(x, codes)
    assert within == pytest.approx(1.0)
    assert across == pytest.approx(0.0)


def test_layer_metrics_on_planted_grid():
    h, *_ = planted(n_ctx=40, n_pos=30, d=50, noise=0.01)
    dec = stream(h)
    topics = ["a"] * 20 + ["b"] * 20
    row = layer_metrics(dec, topic_codes(topics)[0], Settings(smoothness_cutoff=10))
    assert row["pos_share"] + row["ctx_share"] + row["resid_share"] == pytest.approx(1.0)
    assert row["resid_share"] < 1e-3
    assert row["smoothness_cutoff"] == 10
    assert 0 <= row["incoherence_mean"] <= row["incoherence_max"] <= 1
    assert row["pos_rel_norm_total"] <= row["pos_rel_norm"] * (1 + 1e-9)
    assert row["screenot_bound"] == 14


def test_decompose_refuses_an_incomplete_grid():
    h, *_ = planted(n_ctx=4, n_pos=3, d=2)
    design = full_grid(4, 3)
    sums, scatter = PosCtxSums(4, 3, 2, design), Scatter(2)
    rows = np.arange(11)  # the last token (context 3, position 2) is missing
    for acc in (sums, scatter):
        acc.update(h.reshape(-1, 2)[rows], rows)
    with pytest.raises(ValueError, match="incomplete grid"):
        decompose(sums, scatter)
