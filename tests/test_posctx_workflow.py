"""A real Snakemake run of the posctx stage on tiny models; results checked against the stored states."""

import numpy as np
import polars as pl
import pytest
import yaml
from runs import snakemake

from layergeom.analyses.posctx.components import read_components
from layergeom.analyses.posctx.design import grid_design
from layergeom.io.store import open_hidden, read_tokens


@pytest.mark.slow
def test_posctx_stage_end_to_end(tmp_path, text_corpus, tiny_bert, tiny_gpt2):
    config = {
        "corpora": {
            "ctx": {
                "source": "text",
                "path": str(text_corpus),
                "sequences": {"mode": "contexts", "length": 16, "count": 6, "per_document": 2},
            }
        },
        "models": {"bert": {"source": str(tiny_bert)}, "gpt": {"source": str(tiny_gpt2)}},
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128},
        "stream": {"shards": 2},
        "posctx": {"ctx_components": 3},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/figures/posctx/ctx/layers.png"] + [
        f"results/figures/posctx/{m}/ctx/pos_pca2.png" for m in ("bert", "gpt")
    ]
    done = snakemake(tmp_path, *targets)
    assert done.returncode == 0, done.stderr[-3000:]
    for model, n_pos in (("bert", 14), ("gpt", 15)):  # [CLS]/[SEP] frame out for bert; position 0 out
        base = tmp_path / "results"
        hidden = open_hidden(base / "hidden" / model / "ctx" / "states.zarr")
        design = grid_design(read_tokens(base / "hidden" / model / "ctx" / "tokens.parquet"), False, True)
        comp = read_components(base / "posctx" / model / "ctx" / "components.zarr")
        table = pl.read_parquet(base / "posctx" / model / "ctx" / "layers.parquet")
        assert table.height == hidden.shape[0] and comp["pos"].shape[1] == n_pos
        rows = np.flatnonzero(design.mask)
        for layer in range(hidden.shape[0]):
            h = np.zeros((*design.shape, hidden.shape[2]))
            h[design.ctx_index[rows], design.pos_index[rows]] = np.asarray(hidden[layer], dtype=np.float64)[rows]
            mu = h.mean(axis=(0, 1))
            np.testing.assert_allclose(comp["pos"][layer], h.mean(axis=0) - mu, atol=1e-9 * np.abs(h).max())
            np.testing.assert_allclose(comp["ctx"][layer], h.mean(axis=1) - mu, atol=1e-9 * np.abs(h).max())
        shares = table.select(pl.sum_horizontal("pos_share", "ctx_share", "resid_share")).to_series()
        np.testing.assert_allclose(shares.to_numpy(), 1.0, rtol=1e-12)
    assert (tmp_path / "results" / "figures" / "posctx" / "gpt" / "ctx" / "pos_ctx_cosines.png").stat().st_size > 0
