"""Fused extraction (extraction.store: none) makes the tables of store mode (float32) from the forward pass."""

import numpy as np
import polars as pl
import pytest
import yaml
from runs import assert_tables_match, snakemake
from test_workflow import tiny_config

pytestmark = pytest.mark.slow  # two whole runs of the tiny config (make test-slow, CI)

TABLES = [
    "summary/{m}/{c}/layers.parquet",
    "norm_variance/{m}/{c}/token_types.parquet",
    "norm_variance/{m}/{c}/layers.parquet",
    "norm_variance/{m}/{c}/top_q.parquet",
    "anisotropy/{m}/{c}/layers.parquet",
    "dimensions/{m}/{c}/layers.parquet",
    "dimensions/{m}/{c}/top_dimensions.parquet",
    "massive/{m}/{c}/layers.parquet",
    "massive/{m}/{c}/top.parquet",
    "linearity/{m}/{c}/layers.parquet",
    "layer_cka/{m}/{c}/pairs.parquet",
]
# Not the same number by construction: which method gave the centered and standardized cosines.
METHOD_COLUMNS = {"centered_method", "standardized_method"}


def run(workdir, config):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(workdir, "--notemp")
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir / "results"


@pytest.fixture(scope="module")
def both_modes(tmp_path_factory, text_corpus, tiny_bert, tiny_gpt2):
    config = tiny_config(text_corpus, tiny_bert, tiny_gpt2)
    config["extraction"]["dtype"] = "float32"
    config["models"]["bert"]["layer_cka"] = True  # with its layer subset; gpt's layers are fed in two passes
    config["models"]["bert"]["extraction"] = {"dtype": "float32", "layers": [0, 2]}  # a layer subset in both modes
    stored = run(tmp_path_factory.mktemp("stored"), config)
    config["extraction"]["store"] = "none"
    config["extraction"]["shards"] = 2  # two fused jobs per pair, cut inside forward batches, merged as one

    # gpt: 440 kB hold two of its three layers' accumulators (the job logs 144,512 bytes per layer with dimensions and
    # massive, about 178 kB with linearity's 64 x 64 joint scatter too), so its fused jobs make two passes.
    config["models"]["gpt"]["extraction"]["accumulator_budget_gb"] = 4.4e-4
    fused = run(tmp_path_factory.mktemp("fused"), config)
    return stored, fused


def assert_same_table(a: pl.DataFrame, b: pl.DataFrame, where: str) -> None:
    """Every column equal but the method columns: numbers to 1e-9 relative, the rest exactly."""
    assert_tables_match(a, b, where, 1e-9, METHOD_COLUMNS)


def test_fused_mode_writes_no_store_and_the_same_tables(both_modes):
    """Store mode in one stream shard, fused mode in two: every table the same."""
    stored, fused = both_modes
    for model in ("bert", "gpt"):
        for corpus in ("docs", "ctx"):
            hidden = fused / "hidden" / model / corpus
            assert not (hidden / "states.zarr").exists() and (hidden / "header.zarr").is_dir()
            assert (stored / "hidden" / model / corpus / "states.zarr").is_dir()
            for pattern in TABLES:
                path = pattern.format(m=model, c=corpus)
                assert_same_table(pl.read_parquet(stored / path), pl.read_parquet(fused / path), path)
            methods = pl.read_parquet(fused / f"anisotropy/{model}/{corpus}/layers.parquet")["centered_method"]
            assert set(methods) == {"id_sample"}
            methods = pl.read_parquet(fused / f"dimensions/{model}/{corpus}/layers.parquet")["standardized_method"]
            assert set(methods) == {"sample"}
        path = f"posctx/{model}/ctx/layers.parquet"
        assert_same_table(pl.read_parquet(stored / path), pl.read_parquet(fused / path), path)


def test_fused_centered_cosine_is_exact_when_the_sample_is_every_token(both_modes):
    """The tiny corpora have fewer tokens than id.n_points: the sample is every selected token."""
    stored, fused = both_modes
    a = pl.read_parquet(stored / "anisotropy/gpt/docs/layers.parquet")
    b = pl.read_parquet(fused / "anisotropy/gpt/docs/layers.parquet")
    assert set(a["centered_method"]) == {"all_tokens"}
    assert_tables_match(a.select("mean_cos_centered"), b.select("mean_cos_centered"), "anisotropy/gpt/docs")


def test_rogue_contributions_sum_to_the_mean_cosine(both_modes):
    """The dimensions' contributions (their sum, dimensions' mean_cos) equal anisotropy's mean_cos, in both modes."""
    for results in both_modes:
        for model, corpus in (("bert", "docs"), ("gpt", "ctx")):
            dims = pl.read_parquet(results / f"dimensions/{model}/{corpus}/layers.parquet")
            aniso = pl.read_parquet(results / f"anisotropy/{model}/{corpus}/layers.parquet")
            np.testing.assert_allclose(dims["mean_cos"], aniso["mean_cos"], rtol=0, atol=1e-12)
            top = pl.read_parquet(results / f"dimensions/{model}/{corpus}/top_dimensions.parquet")
            first, total = top.filter(pl.col("rank") == 1)["contribution"].to_numpy(), dims["mean_cos"].to_numpy()
            share = np.where(total > 0, first / total, np.nan)  # a share of a non-positive mean cosine is NaN
            np.testing.assert_allclose(share, dims["top1_share"], rtol=1e-12)


def test_fused_jobs_split_layers_under_the_budget(both_modes):
    _, fused = both_modes
    log = (fused.parent / "logs/fused/gpt/docs/1-of-2.log").read_text()
    assert " 2 pass(es)" in log, log[-2000:]
    assert "tokens/s" in log
