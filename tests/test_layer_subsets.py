"""Layer subsets of a 3-block GPT-2 (extraction.layers) run end to end: no stored layer is said to be after the
final norm unless it is the last block, and the decoder-peak claim names the stored layer it judges."""

import polars as pl
import pytest
import yaml
from runs import snakemake


@pytest.fixture(scope="module")
def gpt3(tmp_path_factory, tiny_gpt2):
    """The tests' tiny GPT-2 tokenizer with a randomly initialised 3-block model."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2Model

    root = tmp_path_factory.mktemp("gpt3")
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    torch.manual_seed(3)
    GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=3, n_head=2, n_positions=128)).save_pretrained(
        root
    )
    tokenizer.save_pretrained(root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("layers", [[0, 1], [1], [0, 3]])
def test_a_layer_subset_gets_verdicts_and_per_row_final_norm(tmp_path, text_corpus, gpt3, layers):
    config = {
        "corpora": {"docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 10}}},
        "models": {"gpt": {"source": str(gpt3), "extraction": {"layers": layers, "dtype": "float32"}}},
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128},
        "drift": {"enabled": False},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results"
    for table in results.glob("*/gpt/docs/*.parquet"):
        frame = pl.read_parquet(table)
        if "after_final_norm" in frame.columns:
            assert set(frame.filter(pl.col("after_final_norm"))["layer"]) <= {3}, table
            assert set(frame["layer"]) <= set(layers), table
    anisotropy = pl.read_parquet(results / "anisotropy" / "gpt" / "docs" / "layers.parquet")
    assert anisotropy["after_final_norm"].to_list() == [layer == 3 for layer in layers]  # GPT-2 norms its last state
    findings = pl.read_csv(results / "findings.csv")
    peak = findings.filter(pl.col("claim") == "sl_decoder_peak").row(0, named=True)
    before = anisotropy.filter(~pl.col("after_final_norm"))
    if before.height >= 2:
        best = before.sort("sigma1_share", descending=True)["layer"][0]
        assert f"at layer {best} " in peak["measured"]
    else:
        assert peak["verdict"] == "not applicable" and "stored layer(s) before the final norm" in peak["measured"]
