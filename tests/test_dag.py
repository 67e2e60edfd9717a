"""The config views the rule files use (layergeom.dag): pairs per analysis, selections, stored and fused models,
hashed settings, resources, plans and targets, on a validated tiny config."""

from types import SimpleNamespace

import pytest
from snakemake.utils import validate

from layergeom import config as lgconfig
from layergeom.analyses.registry import ANALYSES, analysis
from layergeom.dag import Dag

SCHEMA = "workflow/schemas/config.schema.yaml"


@pytest.fixture
def plan(text_corpus, tiny_bert, tiny_gpt2, monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
    config = {
        "corpora": {
            "docs": {"source": "text", "path": str(text_corpus)},
            "ctx": {"source": "text", "path": str(text_corpus), "sequences": {"mode": "contexts", "length": 16}},
        },
        "models": {
            "bert": {"source": str(tiny_bert), "extraction": {"shards": 3, "accumulator_budget_gb": 2}},
            "gpt": {"source": str(tiny_gpt2), "corpora": ["ctx"], "extraction": {"store": "none"}},
        },
        "posctx": {"include_special": True},
        "drift": {"enabled": False},
    }
    validate(config, SCHEMA, set_default=True)
    config["models"] = lgconfig.expand_checkpoints(config)
    return Dag(config)


def wc(**values):
    return SimpleNamespace(**values, items=lambda: values.items())


def test_pairs_and_modes(plan):
    assert plan.pairs == [("bert", "docs"), ("bert", "ctx"), ("gpt", "ctx")]
    assert plan.analysis_pairs("posctx") == [("bert", "ctx"), ("gpt", "ctx")]
    assert plan.fused("gpt") and not plan.fused("bert")
    assert plan.store_path("gpt", "ctx").endswith("hidden/gpt/ctx/header.zarr")
    assert plan.store_path("bert", "ctx").endswith("hidden/bert/ctx/states.zarr")
    assert plan.pair_shards("bert") == plan.stream_shards == ["0-of-1"]


def test_selection_overrides_and_plans(plan):
    assert plan.selection("posctx") == {"include_special": True, "exclude_first_position": True}
    assert plan.selection("summary") == {
        k: plan.config["selection"][k] for k in ("include_special", "exclude_first_position")
    }
    plans = plan.stream_plans(wc(model="bert", corpus="docs"))
    assert list(plans) == [a.name for a in ANALYSES.values() if a.streamed and a.name not in ("posctx", "layer_cka")]
    fused = plan.fused_plans(wc(model="gpt", corpus="ctx"))
    assert fused["anisotropy"]["settings"]["id"] == plan.config["anisotropy"]["id"]


def test_second_pass_parts_only_for_stored_pairs(plan):
    parts = plan.second_pass_parts("dimensions", "standardized")
    assert parts(wc(model="bert", corpus="docs")) == ["results/dimensions/bert/docs/parts/standardized/0-of-1"]
    assert parts(wc(model="gpt", corpus="ctx")) == []
    assert plan.fused_stream_parts(wc(model="bert", corpus="docs")) == []
    assert plan.fused_stream_parts(wc(model="gpt", corpus="ctx")) == plan.stream_parts(wc(model="gpt", corpus="ctx"))
    assert plan.fused_plans(wc(model="gpt", corpus="ctx"))["dimensions"]["settings"]["sample"]["n_points"] == 4096


def test_hashed_settings_leave_out_what_changes_no_number(plan):
    settings = plan.extract_params(wc(model="bert", corpus="docs"))["settings"]
    assert "store" not in settings and "accumulator_budget_gb" not in settings and settings["shards"] == 3
    assert "shards" not in lgconfig.store_settings(settings)


def test_extract_resources_depend_on_k(plan):
    assert plan.extract_resources(wc(model="bert"), 2) == {"threads": 1, "gpu": 0, "mem_mb": 4000, "runtime": 60}
    assert plan.extract_resources(wc(model="gpt"))["threads"] == 8
    inputs = plan.extract_inputs(wc(model="bert", corpus="docs"))
    assert len(inputs["shards"]) == 3 and inputs["plan"].endswith("extract/plan.json")


def test_targets_cover_every_table_and_figure(plan):
    targets = set(plan.targets())
    assert f"{plan.results}/posctx/gpt/ctx/layers.parquet" in targets
    assert f"{plan.results}/figures/norm_variance/bert/docs/scatter_all.png" in targets
    assert f"{plan.results}/tables/summary/docs.csv" in targets
    assert not any("dynamics" in t or "drift" in t for t in targets)
    assert all(f"{plan.results}/figures/posctx/{c}/layers.png" not in targets for c in ("docs",))


def test_every_figure_is_under_its_analysis_then_model_then_corpus(plan):
    figures = [t[len(plan.results) + 1 :].split("/") for t in plan.targets() if t.endswith(".png")]
    for _, name, *folders, _ in figures:  # figures/<analysis>/{model}/{corpus}/ or figures/<analysis>/{corpus}/
        assert name in ANALYSES, name
        assert tuple(folders) in plan.pairs or (len(folders) == 1 and folders[0] in plan.corpora), folders
    assert plan.figure("dynamics", "summary", "tiny", "ctx") == f"{plan.results}/figures/dynamics/tiny/ctx/summary.png"


def test_an_unknown_analysis_is_named():
    with pytest.raises(KeyError, match="no analysis 'max_norms'.*known: summary"):
        analysis("max_norms")
