"""The untrained-block drift experiment: exact measures, and N = 0 equals a run on the unperturbed inputs."""

import numpy as np
import polars as pl
import pytest
import torch

from layergeom.analyses.dynamics.drift import (
    drift_grid,
    drift_inputs,
    drift_site,
    drift_table,
    make_blocks,
    mean_pairwise_cosine,
)

SETTINGS = {
    "blocks": ["gpt2", "bert"],
    "n_blocks": 2,
    "d_model": 16,
    "n_head": 2,
    "sequences": 3,
    "length": 6,
    "drift_min": 0.1,
    "drift_max": 1e4,
    "points": 6,
    "repeats": 2,
    "seed": 5,
}


@pytest.fixture(scope="module")
def table():
    return drift_table(SETTINGS)


def test_grid_starts_at_zero_and_is_log_spaced():
    grid = drift_grid(0.01, 100, 5)
    np.testing.assert_allclose(grid, [0, 0.01, 0.1, 1, 10, 100], rtol=1e-12)
    with pytest.raises(ValueError, match="drift_min"):
        drift_grid(1, 0.5, 3)


def test_mean_pairwise_cosine_is_exact():
    x = np.random.default_rng(0).standard_normal((40, 7)) + 0.5
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    gram = u @ u.T
    expected = (gram.sum() - np.trace(gram)) / (40 * 39)
    assert mean_pairwise_cosine(x) == pytest.approx(expected, rel=1e-12)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)


@pytest.mark.parametrize("kind", ["gpt2", "bert"])
def test_zero_drift_matches_unperturbed_run(table, kind):
    for repeat in range(2):
        blocks = make_blocks(kind, 16, 2, 2, seed=5 + repeat)
        x, _ = drift_inputs(3, 6, 16, seed=5 + repeat)
        mask = torch.triu(torch.full((6, 6), torch.finfo(torch.float32).min), 1)[None, None] if kind == "gpt2" else None
        keys = np.arange(1, 7) if kind == "gpt2" else np.full(6, 6)
        h = x
        for index, block in enumerate(blocks):
            with torch.no_grad():
                if kind == "gpt2":
                    weights = block.attn(block.ln_1(h), attention_mask=mask)[1]
                else:
                    weights = block.attention.self(h)[1]
                out = block(h, attention_mask=mask)
            p = weights.double().numpy()
            flat = out.reshape(-1, 16).double().numpy()
            u = flat / np.linalg.norm(flat, axis=1, keepdims=True)
            n = len(u)
            row = table.filter(
                (pl.col("block_type") == kind)
                & (pl.col("repeat") == repeat)
                & (pl.col("drift") == 0)
                & (pl.col("block") == index + 1)
            ).row(0, named=True)
            assert row["mean_cos"] == pytest.approx(((u @ u.T).sum() - n) / (n * (n - 1)), rel=1e-9, abs=1e-12)
            assert row["mean_entropy"] == pytest.approx(_entropy(p).mean(), rel=1e-9)
            assert row["mean_max_weight"] == pytest.approx(p.max(-1).mean(), rel=1e-9)
            assert row["uniform_entropy"] == pytest.approx(np.log(keys).mean(), rel=1e-12)
            assert row["mean_norm"] == pytest.approx(np.linalg.norm(flat, axis=1).mean(), rel=1e-9)
            h = out


def test_drift_reaches_the_attention_and_sharpens_it(table):
    first = table.filter(pl.col("block") == 1).group_by("block_type", "drift").agg(pl.all().mean()).sort("drift")
    for kind in ("gpt2", "bert"):
        rows = first.filter(pl.col("block_type") == kind)
        assert rows["input_mean_cos"][-1] > 0.999 and abs(rows["input_mean_cos"][0]) < 0.2
    for kind in ("bert", "gpt2"):  # post-norm: the input reaches the attention; pre-norm: added after ln_1
        rows = first.filter(pl.col("block_type") == kind)
        assert rows["mean_entropy"][-1] < 0.75 * rows["mean_entropy"][0], kind


def test_pre_norm_drift_is_added_after_the_first_norm():
    blocks = make_blocks("gpt2", 16, 2, 1, seed=3)
    x, b = drift_inputs(2, 5, 16, seed=3)
    h, read, hook = drift_site(blocks[0], "gpt2", x, 7.0 * b)
    try:
        with torch.no_grad():
            seen = blocks[0].ln_1(x)
    finally:
        hook.remove()
    assert torch.equal(h, x) and torch.allclose(seen, read) and torch.allclose(read - blocks[0].ln_1(x), 7.0 * b)
