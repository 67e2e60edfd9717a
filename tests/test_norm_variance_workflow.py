"""A real Snakemake run of the norm_variance analysis on tiny models, checked against the stores in RAM."""

import numpy as np
import polars as pl
import pytest
import yaml
from runs import snakemake

from layergeom.io.store import open_hidden, read_tokens
from layergeom.stream.selection import token_mask


@pytest.mark.slow
def test_norm_variance_end_to_end(tmp_path, text_corpus, tiny_bert, tiny_gpt2):
    config = {
        "corpora": {"docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 24}}},
        "models": {"bert": {"source": str(tiny_bert)}, "gpt": {"source": str(tiny_gpt2)}},
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128},
        "stream": {"shards": 3},
        "norm_variance": {"min_count": 2, "exclude": {"token_ids": [0]}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    figures = "results/figures/norm_variance/docs"
    targets = [f"{figures}/{name}.png" for name in ("slope_r2", "cv_q", "shares", "vw_over_v")]
    targets += [
        f"results/figures/norm_variance/{m}/docs/{n}.png" for m in ("bert", "gpt") for n in ("scatter_all", "top_q")
    ]
    done = snakemake(tmp_path, *targets)
    assert done.returncode == 0, done.stderr[-3000:]

    for model in ("bert", "gpt"):
        hidden = tmp_path / "results" / "hidden" / model / "docs"
        array, tokens = open_hidden(hidden / "states.zarr"), read_tokens(hidden / "tokens.parquet")
        keep = token_mask(tokens)
        ids = tokens["token_id"].to_numpy()
        stats = tmp_path / "results" / "norm_variance" / model / "docs"
        assert sorted(p.name for p in (tmp_path / "logs" / "stream" / model / "docs").iterdir()) == [
            f"{k}-of-3.log" for k in range(3)
        ]
        assert not (tmp_path / "results" / "parts" / model / "docs" / "stream").exists()  # temporary partials
        types = pl.read_parquet(stats / "token_types.parquet").filter(pl.col("variant") == "all")
        layers = pl.read_parquet(stats / "layers.parquet").filter(pl.col("variant") == "all")
        assert layers.height == array.shape[0]
        for layer in range(array.shape[0]):
            x = np.asarray(array[layer], dtype=np.float64)
            got = types.filter(pl.col("layer") == layer)
            assert got["token_id"].to_list() == np.unique(ids[keep]).tolist()
            for row in got.head(5).iter_rows(named=True):
                rows = x[keep & (ids == row["token_id"])]
                mean = rows.mean(axis=0)
                assert row["n"] == len(rows)
                assert row["V"] == pytest.approx(np.mean(np.sum((rows - mean) ** 2, axis=1)), rel=1e-10, abs=1e-12)
                assert row["M"] == pytest.approx(mean @ mean, rel=1e-10)
            used = got.filter(pl.col("n") >= 2)
            summary = layers.filter(pl.col("layer") == layer).row(0, named=True)
            assert summary["n_types"] == used.height and used.height > 2
            slope, intercept = np.polyfit(used["M"].to_numpy(), used["V"].to_numpy(), 1)
            assert summary["slope"] == pytest.approx(slope, rel=1e-8)
            pooled = x[keep & np.isin(ids, used["token_id"].to_numpy())]
            v_all = np.mean(np.sum((pooled - pooled.mean(axis=0)) ** 2, axis=1))
            assert summary["v_w"] + summary["v_b"] == pytest.approx(v_all, rel=1e-10)
            assert summary["m_share"] + summary["vb_share"] + summary["vw_share"] == pytest.approx(1.0, abs=1e-10)
        filtered = pl.read_parquet(stats / "token_types.parquet").filter(pl.col("variant") == "filtered")
        assert filtered.filter(pl.col("token_id") == 0)["excluded"].all()
    assert all((tmp_path / t).stat().st_size > 0 for t in targets)
