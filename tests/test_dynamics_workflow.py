"""A real Snakemake run of training, checkpoint models, attention statistics and drift on tiny settings."""

import json

import numpy as np
import polars as pl
import pytest
import yaml
from runs import snakemake


@pytest.mark.slow
def test_training_dynamics_end_to_end(tmp_path, text_corpus, tiny_bert):
    config = {
        "corpora": {
            "ctx": {
                "source": "text",
                "path": str(text_corpus),
                "sequences": {"mode": "contexts", "length": 16, "count": 6, "per_document": 2},
            }
        },
        "models": {"tiny": {"checkpoints": {"train": "small", "steps": [0, 2, 8]}}, "bert": {"source": str(tiny_bert)}},
        "training": {
            "runs": {
                "small": {
                    "corpus": "ctx",
                    "vocab_size": 300,
                    "min_frequency": 1,
                    "n_layer": 2,
                    "n_embd": 32,
                    "n_head": 2,
                    "context_length": 32,
                    "steps": 8,
                    "batch_size": 4,
                    "eval_fraction": 0.2,
                    "eval_batches": 1,
                }
            }
        },
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128, "dtype": "float32"},
        "attention": {"scope": "all"},
        "drift": {"d_model": 16, "n_head": 2, "sequences": 2, "length": 8, "points": 4, "repeats": 1},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [
        "results/figures/train/small/loss.png",
        "results/figures/dynamics/tiny/ctx/attention.png",
        "results/figures/dynamics/tiny/ctx/summary.png",
        "results/figures/dynamics/drift.png",
        "results/attention/bert/ctx/heads.parquet",
    ]
    done = snakemake(tmp_path, *targets)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results"
    loss = pl.read_parquet(results / "train" / "small" / "loss.parquet")
    assert loss["step"].to_list() == list(range(9)) and loss["checkpoint"].sum() == 5  # 0, 1, 2, 4, 8
    assert json.loads((results / "train/small/checkpoints/step_8/trainer_state.json").read_text())["step"] == 8
    for step in (0, 2, 8):
        heads = pl.read_parquet(results / "attention" / f"tiny.step_{step}" / "ctx" / "heads.parquet")
        assert heads.height == 2 * 2 and heads["step"].unique().to_list() == [step]
        assert heads["qk_rotation"].unique().to_list() == ["none"]
        assert (heads["mean_entropy"] <= heads["uniform_entropy"] + 1e-9).all()
        assert np.isfinite(heads.select("mean_q_norm", "mean_k_norm", "qk_cos").to_numpy()).all()
    bert = pl.read_parquet(results / "attention" / "bert" / "ctx" / "heads.parquet")
    assert bert["step"].null_count() == bert.height and bert["n_tokens"][0] == 6 * 14  # [CLS] and [SEP] left out
    drift = pl.read_parquet(results / "dynamics" / "drift.parquet")
    assert drift.height == 2 * 1 * 5 * 2  # block types x repeats x (N = 0 and 4 points) x blocks
    for target in targets[:4]:
        assert (tmp_path / target).stat().st_size > 0
