"""The anisotropy stage's sharded passes and merges on a real small store, against in-RAM references."""

import numpy as np
import polars as pl
import pytest

from layergeom.analyses.anisotropy.intrinsic_dimension import estimate
from layergeom.analyses.anisotropy.metrics import (
    id_table,
    layer_table,
    merge_centered,
    merge_moments,
    random_baselines,
    write_centered,
)
from layergeom.analyses.jobs import run_stream_shard
from layergeom.io.atomic import write_parquet
from layergeom.io.store import create_store, open_hidden
from layergeom.stream.selection import token_mask

ATTRS = {
    "model": "m",
    "corpus": "c",
    "model_source": "src",
    "revision": None,
    "init": "pretrained",
    "kind": "decoder",
    "n_layers": 2,
    "layer_names": ["embeddings", "block_1", "block_2"],
    "last_layer_after_final_norm": True,
}


def mean_cos(x: np.ndarray) -> float:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = u @ u.T
    return float((g.sum() - np.trace(g)) / (len(u) * (len(u) - 1)))


@pytest.fixture()
def store(tmp_path):
    rng = np.random.default_rng(0)
    n_tokens, d = 300, 8
    data = np.stack([rng.standard_normal(d) * (1 + 2 * i) + rng.standard_normal((n_tokens, d)) for i in range(3)])
    array = create_store(tmp_path / "states.zarr", 3, n_tokens, d, "float32", 40, None, ATTRS)
    array[:] = data.astype(np.float32)
    seq = np.repeat(np.arange(30), 10)[rng.permutation(n_tokens)]  # rows not in sequence order
    tokens = pl.DataFrame(
        {
            "seq_id": seq,
            "position": np.arange(n_tokens) % 10,
            "token_id": np.arange(n_tokens),
            "is_special": np.arange(n_tokens) % 10 == 0,
        }
    )
    write_parquet(tokens, tmp_path / "tokens.parquet")
    return open_hidden(tmp_path / "states.zarr"), tokens, array[:].astype(np.float64)


def test_sharded_stage_equals_in_ram(store, tmp_path):
    array, tokens, data = store
    states, token_file = tmp_path / "states.zarr", tmp_path / "tokens.parquet"
    selection = {"include_special": False, "exclude_first_position": False}
    mask = token_mask(tokens, **selection)
    dirs = [tmp_path / f"moments_{k}" for k in range(3)]
    for k, folder in enumerate(dirs):
        run_stream_shard(states, token_file, folder, f"{k}-of-3", {"anisotropy": selection}, block_tokens=80)
    spectrum, means = merge_moments(dirs, mask, 3)
    np.save(tmp_path / "means.npy", means)
    centered_dirs = [tmp_path / f"centered_{k}" for k in range(3)]
    for k, folder in enumerate(centered_dirs):
        write_centered(states, token_file, tmp_path / "means.npy", selection, f"{k}-of-3", None, folder)
    centered = merge_centered(centered_dirs, 3)
    settings = {
        "n_points": 200,
        "sample": "random",
        "seed": 1,
        "discard_fraction": 0.1,
        "bootstrap": 30,
        "confidence": 0.9,
        "k_neighbors": 10,
        "block_points": 64,
    }
    ids = id_table(array, tokens, mask, settings, None)
    table = layer_table(array, spectrum, centered, ids, selection)
    assert table["layer_name"].to_list() == ATTRS["layer_names"]
    assert table["relative_depth"].to_list() == [0.0, 0.5, 1.0]
    assert table["kind"].to_list() == ["decoder"] * 3 and table["revision"].dtype == pl.Utf8
    for layer in range(3):
        x = data[layer][mask]
        row = table.row(layer, named=True)
        s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False) ** 2
        assert row["n_tokens"] == mask.sum()
        assert row["mean_cos"] == pytest.approx(mean_cos(x), rel=1e-10)
        assert row["mean_cos_centered"] == pytest.approx(mean_cos(x - x.mean(axis=0)), rel=1e-9, abs=1e-13)
        assert row["sigma1_share"] == pytest.approx(s[0] / s.sum(), rel=1e-10)
        np.testing.assert_allclose(row["top10_shares"], (s / s.sum())[:10], rtol=1e-9)
        np.testing.assert_allclose(means[layer], x.mean(axis=0), rtol=1e-12)
        rows = np.sort(np.random.default_rng(1).choice(np.flatnonzero(mask), 200, replace=False))
        want = estimate(data[layer][rows], 0.1, 10, 30, 0.9, 1, 64)
        assert row["twonn_id"] == want.twonn and row["levina_bickel_id"] == want.levina_bickel
        assert (row["sl_id"], row["sl_id_lo"], row["sl_id_hi"]) == (want.sl, want.sl_lo, want.sl_hi)
        assert row["sl_dropped"] == want.sl_dropped
        assert row["n_used"] == want.n_used == 200


def test_random_baselines_pair_same_source_and_revision():
    models = [
        ("gpt", "gpt2", None, "pretrained"),
        ("gpt_rand", "gpt2", None, "random"),
        ("gpt_old", "gpt2", "step0", "pretrained"),
        ("bert_rand", "bert", None, "random"),
    ]
    assert random_baselines(models) == [("gpt", "gpt_rand")]
