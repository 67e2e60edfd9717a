"""A real Snakemake run of the anisotropy stage on tiny models, sharded, with a random-init twin."""

import numpy as np
import polars as pl
import pytest
import yaml
from runs import snakemake

from layergeom.io.store import open_hidden, read_tokens
from layergeom.stream.selection import token_mask


@pytest.mark.slow
def test_anisotropy_stage_end_to_end(tmp_path, text_corpus, tiny_bert, tiny_gpt2):
    config = {
        "corpora": {"docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 12}}},
        "models": {
            "bert": {"source": str(tiny_bert)},
            "gpt": {"source": str(tiny_gpt2)},
            "gpt_rand": {"source": str(tiny_gpt2), "init": "random", "seed": 1},
        },
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128},
        "stream": {"shards": 2},
        "anisotropy": {"id": {"n_points": 60, "bootstrap": 20, "k_neighbors": 5}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results"
    for model in ("bert", "gpt", "gpt_rand"):
        table = pl.read_parquet(results / "anisotropy" / model / "docs" / "layers.parquet")
        hidden = open_hidden(results / "hidden" / model / "docs" / "states.zarr")
        mask = token_mask(read_tokens(results / "hidden" / model / "docs" / "tokens.parquet"))
        assert table.height == 3 and table["init"][0] == ("random" if model == "gpt_rand" else "pretrained")
        x = hidden[2][mask].astype(np.float64)
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False) ** 2
        n = len(u)
        assert table["mean_cos"][2] == pytest.approx(((u.sum(0) @ u.sum(0)) - n) / (n * (n - 1)), rel=1e-9)
        assert table["sigma1_share"][2] == pytest.approx(s[0] / s.sum(), rel=1e-9)
        assert table["n_used"][2] <= 60 and np.isfinite(table["twonn_id"].to_numpy()).all()
        assert np.isfinite(table["sl_id"].to_numpy()).all() and (table["sl_id_lo"] <= table["sl_id_hi"]).all()
    for name in ("anisotropy", "intrinsic_dimension", "trained_vs_random"):
        assert (results / "figures" / "anisotropy" / "docs" / f"{name}.png").stat().st_size > 0
    report = snakemake(tmp_path, "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-2000:]
    assert "trained_vs_random.png" in (results / "report.html").read_text(errors="ignore")
