"""A real Snakemake run of a tiny config, end to end, in a temporary folder."""

import hashlib
import shutil

import numpy as np
import polars as pl
import pytest
import yaml
from browser import first_heading, open_figure, report_page
from runs import ID_COLUMNS, assert_tables_match, float32_fallback, snakemake

from layergeom.io.store import open_hidden, read_tokens


def tiny_config(text_corpus, tiny_bert, tiny_gpt2) -> dict:
    return {
        "corpora": {
            "docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 10}},
            "ctx": {
                "source": "text",
                "path": str(text_corpus),
                "sequences": {"mode": "contexts", "length": 16, "count": 6, "per_document": 2},
            },
        },
        "models": {
            "bert": {"source": str(tiny_bert)},
            "gpt": {"source": str(tiny_gpt2), "extraction": {"dtype": "float32"}, "layer_cka": True},
        },
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128},
    }


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory, text_corpus, tiny_bert, tiny_gpt2):
    workdir = tmp_path_factory.mktemp("run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config(text_corpus, tiny_bert, tiny_gpt2)))
    done = snakemake(workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_pipeline_runs_end_to_end(workflow_run):
    results = workflow_run / "results"
    for model in ("bert", "gpt"):
        for corpus in ("docs", "ctx"):
            hidden = open_hidden(results / "hidden" / model / corpus / "states.zarr")
            tokens = read_tokens(results / "hidden" / model / corpus / "tokens.parquet")
            assert hidden.shape == (3, tokens.height, 32)
            assert hidden.attrs["complete"] is True and hidden.attrs["corpus"] == corpus
            assert hidden.dtype == (np.float32 if model == "gpt" else np.float16)
            summary = pl.read_parquet(results / "summary" / model / corpus / "layers.parquet")
            keep = ~tokens["is_special"].to_numpy()
            assert 0 < keep.sum() < tokens.height or model == "gpt"
            norms = np.linalg.norm(hidden[1][keep].astype(np.float64), axis=1)
            assert summary["n_tokens"][1] == keep.sum()
            np.testing.assert_allclose(summary["mean_norm"][1], norms.mean(), rtol=1e-12)
            np.testing.assert_allclose(summary["mean_sq_norm"][1], (norms**2).mean(), rtol=1e-12)
    assert (results / "figures" / "summary" / "docs" / "norms.png").stat().st_size > 0
    assert (workflow_run / "logs" / "extract" / "gpt" / "docs.log").read_text().count("tokens/s") >= 1
    assert (workflow_run / "benchmarks" / "out" / "extract" / "gpt" / "docs.tsv").exists()


# Values of the tiny config computed before the streaming refactor (issue 11); a refactor changes no number.
PINNED = [
    ("summary/bert/docs/layers.parquet", "mean_norm", {"layer": 1}, 5.656737666806574),
    ("summary/gpt/ctx/layers.parquet", "mean_sq_norm", {"layer": 2}, 31.621396569307397),
    (
        "norm_variance/bert/docs/token_types.parquet",
        "M",
        {"layer": 1, "variant": "all", "token_id": 123},
        26.715052399418724,
    ),
    (
        "norm_variance/bert/docs/token_types.parquet",
        "V",
        {"layer": 1, "variant": "all", "token_id": 123},
        5.284728530778988,
    ),
    ("norm_variance/bert/docs/layers.parquet", "q_all", {"layer": 1, "variant": "all"}, 31.999780930197712),
    ("anisotropy/gpt/docs/layers.parquet", "mean_cos", {"layer": 2}, 0.02584929392138886),
    ("anisotropy/bert/ctx/layers.parquet", "mean_cos_centered", {"layer": 1}, -0.0117856714143984),
    ("anisotropy/bert/docs/layers.parquet", "sigma1_share", {"layer": 2}, 0.12855725434357082),
    # changed with the duplicate rule (issue 13): one copy of each repeated point is kept (118 distinct of 190)
    # instead of every copy dropped; old value 19.27018980788926, new 11.032270537368431
    ("anisotropy/gpt/docs/layers.parquet", "twonn_id", {"layer": 1}, 11.032270537368431),
    ("posctx/bert/ctx/layers.parquet", "pos_share", {"layer": 1}, 0.5617459864784017),
    ("posctx/gpt/ctx/layers.parquet", "pos_rel_norm", {"layer": 2}, 0.9954252561363057),
]


# The stores the pins were computed from (sha256 of the stored values, first 16 digits). A forward pass of the
# tiny GPT-2 in another process can give gpt/ctx different last float32 bits (CI on 2026-11-24: the first three
# sequences of its one batch; 3 of 30 reruns of that job here; docs/reliability.md, Not covered). Against such a store
# the pins hold to float32 rounding only, and the intrinsic dimension, which one moved point can change by percents,
# is skipped.
PINNED_STATES = {
    "bert/docs": "88560a1e2302828c",
    "bert/ctx": "df7d45d8c8a319c4",
    "gpt/docs": "0c2722b2ffdeea4d",
    "gpt/ctx": "b4f7cb017c79fd9e",
}


def states_digest(states) -> str:
    """sha256 of a store's values, first 16 hex digits."""
    return hashlib.sha256(np.ascontiguousarray(open_hidden(states)[:]).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("path, column, where, value", PINNED, ids=[f"{p.split('/')[0]}.{c}" for p, c, _, _ in PINNED])
def test_pinned_values_survive_refactors(workflow_run, path, column, where, value):
    table = pl.read_parquet(workflow_run / "results" / path).filter(**where)
    assert table.height == 1
    pair = "/".join(path.split("/")[1:3])
    rtol = 1e-9
    if states_digest(workflow_run / "results" / "hidden" / pair / "states.zarr") != PINNED_STATES[pair]:
        if column in ID_COLUMNS:
            pytest.skip(f"{pair}: the forward pass differed from the pinned one in float32 rounding")
        rtol = float32_fallback(pair)
    assert table[column][0] == pytest.approx(value, rel=rtol)


def test_rerun_has_nothing_to_do_and_report_builds(workflow_run):
    dry = snakemake(workflow_run, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
    report = snakemake(workflow_run, "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-2000:]
    page = (workflow_run / "results" / "report.html").read_text(errors="ignore")
    assert "norms.png" in page and "nv_slope" in page


def test_report_landing_page_reads_from_its_top_in_a_browser(workflow_run):
    report = workflow_run / "results" / "report.html"
    if not report.exists():
        assert snakemake(workflow_run, "--report", "results/report.html").returncode == 0
    assert "System Message" not in report.read_text(errors="ignore")  # no docutils message anywhere
    with report_page(report) as page:
        heading = first_heading(page)
        assert heading["text"] == "Findings" and 0 <= heading["top"] and heading["bottom"] <= heading["height"]
        text = page.inner_text("body")
        assert "holds," in text and "near their threshold" in text and "System Message" not in text
        matrix = page.locator("table", has_text="claim").first
        assert matrix.locator("span.holds, span.fails, span.na").count() > 0
        assert all(width > 0 for width in open_figure(page, "summary", "docs", "norms over layers"))


@pytest.mark.slow
def test_deleted_tables_are_rebuilt_by_a_plain_rerun(workflow_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(workflow_run, copy, symlinks=True)
    gone = ["results/summary/bert/docs/layers.parquet", "results/anisotropy/gpt/ctx/layers.parquet"]
    for path in gone:
        (copy / path).unlink()
    done = snakemake(copy)
    assert done.returncode == 0, done.stderr[-3000:]
    for path in gone:
        assert_tables_match(pl.read_parquet(workflow_run / path), pl.read_parquet(copy / path), path, 1e-12)


def test_findings_judge_every_claim_from_the_tables(workflow_run):
    results = workflow_run / "results"
    table = pl.read_csv(results / "findings.csv")
    expected = {"nv_slope", "nv_m_share", "nv_vw_over_v", "sl_decoder_peak", "sl_encoder_flat", "as_drift"}
    expected |= {"pc_rank", "pc_topics", "pc_incoherence", "pc_smooth", "rd_rogue", "ma_massive", "tl_linear"}
    assert set(table["claim"]) == expected
    assert set(table["verdict"]) <= {"holds", "does not hold", "not applicable"}
    for row in table.filter(claim="nv_slope").iter_rows(named=True):
        layers = pl.read_parquet(results / "norm_variance" / row["model"] / row["corpus"] / "layers.parquet")
        mid = layers.filter(variant="all").filter(pl.col("relative_depth").is_between(1 / 3, 2 / 3))
        fitted = mid.filter(pl.col("slope").is_finite() & pl.col("r2").is_finite())
        passing = fitted.filter(pl.col("slope").is_between(-1.3, -0.7) & (pl.col("r2") >= 0.7))
        expected = "not applicable" if fitted.height == 0 else "holds" if passing.height else "does not hold"
        assert row["verdict"] == expected
        assert "special tokens excluded" in row["tokens"]
    sl = pl.read_parquet(results / "anisotropy/gpt/docs/layers.parquet")
    row = table.filter(claim="sl_decoder_peak", model="gpt", corpus="docs").row(0, named=True)
    assert row["measured"].startswith(f"peak {sl['sigma1_share'].max():.3f}")
    assert table.filter(claim="sl_encoder_flat", model="gpt")["verdict"].to_list() == ["not applicable"] * 2
    assert (results / "findings.md").read_text().count("\n| NV |") == 12


# Measured on the tiny config: with the dimensions and massive analyses (issue 23), 52 PNGs of 412 KB in all and a
# 4.00 MB report, about 3.5 MB of it Snakemake's own page (scripts, rule and package lists); linearity adds one
# figure per corpus. The default run's report stays under 10 MB (README, Timing); these bounds keep the tiny one in
# proportion.
REPORT_BUDGET = 4_500_000
FIGURES_BUDGET = 500_000


def test_tiny_report_stays_under_budget(workflow_run):
    report = workflow_run / "results" / "report.html"
    if not report.exists():
        assert snakemake(workflow_run, "--report", "results/report.html").returncode == 0
    figures = sum(p.stat().st_size for p in (workflow_run / "results" / "figures").rglob("*.png"))
    assert figures < FIGURES_BUDGET
    assert report.stat().st_size < REPORT_BUDGET


def test_bad_config_stops_before_any_job(tmp_path, text_corpus, tiny_bert, tiny_gpt2):
    cfg = tiny_config(text_corpus, tiny_bert, tiny_gpt2)
    cfg["corpora"]["docs"]["path"] = str(tmp_path / "missing")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    done = snakemake(tmp_path)
    assert done.returncode != 0
    assert "corpora.docs.path: no such file or folder" in done.stderr + done.stdout
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def sharded_run(workflow_run, tmp_path_factory, text_corpus, tiny_bert, tiny_gpt2):
    """The tiny config's bert/docs and gpt/ctx stores and tables: bert in 3 shards, gpt in 2 storing layers 0 and 2."""
    cfg = tiny_config(text_corpus, tiny_bert, tiny_gpt2)
    cfg["models"]["bert"]["extraction"] = {"shards": 3}
    cfg["models"]["gpt"]["extraction"].update(shards=2, layers=[0, 2])
    workdir = tmp_path_factory.mktemp("sharded")
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    tables = sorted(workflow_run.glob("results/*/bert/docs/*.parquet")) + sorted(
        workflow_run.glob("results/*/gpt/ctx/*.parquet")
    )
    tables = [str(p.relative_to(workflow_run)) for p in tables]
    done = snakemake(workdir, *tables)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def files_of(root, pattern):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.glob(pattern)) if p.is_file()}


def test_extraction_shards_give_the_same_bytes(workflow_run, sharded_run):
    one, three = workflow_run / "results", sharded_run / "results"
    for pattern in ("hidden/bert/docs/**/*", "*/bert/docs/*.parquet"):
        want = files_of(one, pattern)
        assert want and files_of(three, pattern) == want, pattern
    assert not list(three.glob("parts/**/extract")) and not list(three.glob("hidden/**/.states.zarr.*"))
    dry = snakemake(sharded_run, "-n", "results/hidden/bert/docs/states.zarr")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def test_layer_subset_rows_equal_the_full_run(workflow_run, sharded_run):
    hidden = open_hidden(sharded_run / "results" / "hidden" / "gpt" / "ctx" / "states.zarr")
    assert hidden.shape[0] == 2 and hidden.attrs["layers"] == [0, 2] and hidden.attrs["n_layers"] == 2
    tables = sorted((workflow_run / "results").glob("*/gpt/ctx/*.parquet"))
    assert len(tables) >= 5
    for path in tables:
        relative = path.relative_to(workflow_run / "results")
        full = pl.read_parquet(path)
        subset = pl.read_parquet(sharded_run / "results" / relative)
        if "layer" not in full.columns:
            continue
        if "next_layer" in full.columns:  # pairs of consecutive stored layers: (0, 2) is no pair of the full run
            assert subset.select("layer", "next_layer").rows() == [(0, 2)], relative
            continue
        assert set(subset["layer"]) <= {0, 2}, relative
        want = full.filter(pl.col("layer").is_in([0, 2]))
        if "other_layer" in full.columns:  # every pair of stored layers: the full run has (0, 2) too
            want = want.filter(pl.col("other_layer").is_in([0, 2]))
            assert subset.select("layer", "other_layer").rows() == [(0, 2)], relative
        assert_tables_match(want, subset, str(relative), 1e-12)
