"""Reruns touch only what changed: Snakemake's own dry-run job list after adding a model or changing a parameter.

One full tiny run (one model, two corpora), then the report and dry runs against edited copies of its config.
"""

import copy
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from runs import snakemake

JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", re.MULTILINE)
AGGREGATES = {"summary_figure", "posctx_layers_figure", "table", "all"}


def planned_jobs(workdir: Path, config: dict) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run with `config` schedules, as Snakemake lists them."""
    (workdir / "changed.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(workdir, "-n", config="changed.yaml")
    assert dry.returncode == 0, dry.stderr[-3000:]
    out = dry.stdout + dry.stderr
    jobs = []
    for match in JOB.finditer(out):
        found = re.search(r"^    wildcards: (.*)$", match.group(2), re.MULTILINE)
        jobs.append((match.group(1), dict(kv.split("=", 1) for kv in found.group(1).split(", ")) if found else {}))
    total = re.search(r"^total\s+(\d+)$", out, re.MULTILINE)
    assert total and int(total.group(1)) == len(jobs), out[-3000:]
    return jobs


@pytest.fixture(scope="module")
def base(tmp_path_factory, text_corpus, tiny_bert, tiny_gpt2):
    """A finished run of `bert` on a sentences corpus and a contexts corpus; config['gpt'] is ready to add."""
    workdir = tmp_path_factory.mktemp("incremental")
    config = {
        "corpora": {
            "docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 10}},
            "ctx": {
                "source": "text",
                "path": str(text_corpus),
                "sequences": {"mode": "contexts", "length": 16, "count": 6, "per_document": 2},
            },
        },
        "models": {"bert": {"source": str(tiny_bert)}},
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(workdir, "--notemp")  # keep the stream partials: merges rerun alone
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir, config, {"source": str(tiny_gpt2), "extraction": {"dtype": "float32"}}


def test_cross_model_tables_stack_every_model(base):
    workdir, _, _ = base
    results = workdir / "results"
    for analysis, corpus in (("summary", "docs"), ("summary", "ctx"), ("posctx", "ctx")):
        table = pl.read_csv(results / "tables" / analysis / f"{corpus}.csv")
        own = pl.read_parquet(results / analysis / "bert" / corpus / "layers.parquet")
        assert table["model"].to_list() == ["bert"] * own.height and set(table["corpus"]) == {corpus}
        np.testing.assert_allclose(table["relative_depth"], own["layer"] / (own.height - 1), rtol=0, atol=0)
        for column in own.columns:
            if own[column].dtype.is_float():
                np.testing.assert_allclose(table[column], own[column], rtol=1e-15)
        assert (results / "tables" / analysis / f"{corpus}.md").read_text().count("| bert |") == own.height
    assert not (results / "tables" / "posctx" / "docs.csv").exists()  # posctx needs a contexts corpus


def test_report_has_every_figure_and_table_with_a_caption(base):
    workdir, _, _ = base
    done = snakemake(workdir, "--report", "results/report.html")
    assert done.returncode == 0, done.stderr[-3000:]
    page = (workdir / "results" / "report.html").read_text()
    entries = json.loads(re.search(r"var results = +(\{.*?\});\n", page).group(1))
    categories = json.loads(re.search(r"var categories = +(\{.*?\});\n", page).group(1))
    results = workdir / "results"
    expected = {str(p.relative_to(workdir)) for p in results.glob("figures/**/*.png")}
    expected |= {str(p.relative_to(workdir)) for p in results.glob("tables/*/*.html")}
    assert len(expected) > 10 and expected <= set(entries)
    assert all(len(entries[path]["caption"]) > 100 for path in expected)
    assert {"summary", "posctx", "anisotropy", "norm_variance"} <= set(categories)  # one name per analysis
    assert set(categories["posctx"]) == {"ctx"} and set(categories["summary"]) == {"docs", "ctx"}
    assert "results/tables/posctx/ctx.html" in categories["posctx"]["ctx"]
    caption = entries["results/figures/posctx/bert/ctx/pos_pca2.png"]["caption"]
    assert "bert" in caption and "ctx" in caption and "special tokens excluded" in caption


def test_adding_a_model_runs_only_its_jobs_and_the_aggregates(base):
    workdir, config, gpt = base
    added = copy.deepcopy(config)
    added["models"]["gpt"] = gpt
    jobs = planned_jobs(workdir, added)
    per_model = [rule for rule, wc in jobs if "model" in wc]
    assert {wc["model"] for _, wc in jobs if "model" in wc} == {"gpt"}
    for rule in (
        "extract",
        "extract",
        "stream",
        "stream",
        "summary_merge",
        "summary_merge",
        "posctx_merge",
        "posctx_figures",
    ):
        per_model.remove(rule)  # at least these (stages added later schedule theirs too)
    aggregates = [(rule, wc) for rule, wc in jobs if "model" not in wc]
    assert {rule for rule, _ in aggregates} >= AGGREGATES and "corpus" not in {rule for rule, _ in aggregates}
    # per-corpus cross-model jobs only, and the findings page over every table
    assert all(rule in ("all", "findings") or "corpus" in wc for rule, wc in aggregates)
    tables = {(wc["analysis"], wc["corpus"]) for rule, wc in jobs if rule == "table"}
    assert tables >= {("posctx", "ctx"), ("summary", "ctx"), ("summary", "docs")}


@pytest.mark.parametrize(
    "change, expected, exact",
    [
        (
            {"posctx": {"ctx_components": 3}},  # feeds the merge (metrics) and the captions, not the shards
            {"posctx_merge", "posctx_figures", "posctx_layers_figure", "table:posctx", "findings", "all"},
            True,
        ),
        (
            {"norm_variance": {"min_count": 2}},  # a merge setting: the kept partials are merged again
            {
                "norm_variance_merge",
                "norm_variance_figures",
                "norm_variance_overlay",
                "table:norm_variance",
                "findings",
                "all",
            },
            True,
        ),
        (
            {"stream": {"shards": 2}},  # new partial accumulators for every streamed analysis, merged again
            {
                "stream",
                "summary_merge",
                "norm_variance_merge",
                "anisotropy_merge",
                "anisotropy_centered",
                "posctx_merge",
                "table:posctx",
                "table:summary",
                "all",
            },
            False,
        ),
        (
            {"selection": {"include_special": True}},  # feeds every analysis that inherits it, never extraction
            {
                "stream",
                "summary_merge",
                "summary_figure",
                "table:summary",
                "posctx_merge",
                "posctx_figures",
                "posctx_layers_figure",
                "table:posctx",
                "all",
            },
            False,
        ),
    ],
    ids=["posctx.ctx_components", "norm_variance.min_count", "stream.shards", "selection.include_special"],
)
def test_changing_a_parameter_reruns_only_the_stages_it_feeds(base, change, expected, exact):
    workdir, config, _ = base
    jobs = planned_jobs(workdir, {**config, **change})
    rules = {f"table:{wc['analysis']}" if rule == "table" else rule for rule, wc in jobs}
    assert rules == expected if exact else (rules >= expected and not rules & {"corpus", "extract"})
    assert all(wc.get("model", "bert") == "bert" for _, wc in jobs)
