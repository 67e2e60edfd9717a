"""Checkpoint models in the config: expansion to one model per checkpoint, errors, and the workflow's DAG."""

import copy
import re

import pytest
import yaml
from runs import ROOT, snakemake
from snakemake.utils import validate

from layergeom import config as lgconfig

SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def base_config(corpus_path) -> dict:
    return {
        "corpora": {
            "docs": {"source": "text", "path": str(corpus_path)},
            "ctx": {
                "source": "text",
                "path": str(corpus_path),
                "sequences": {"mode": "contexts", "length": 16, "count": 4, "per_document": 2},
            },
        },
        "models": {
            "tiny": {"checkpoints": {"train": "small", "steps": [0, 4, 10]}, "corpora": ["ctx"]},
            "pythia": {"source": "EleutherAI/pythia-14m", "checkpoints": ["step0", "step1000"], "corpora": ["ctx"]},
        },
        "training": {
            "runs": {
                "small": {
                    "corpus": "docs",
                    "steps": 10,
                    "n_layer": 2,
                    "n_embd": 16,
                    "n_head": 2,
                    "context_length": 16,
                    "vocab_size": 300,
                    "batch_size": 2,
                }
            }
        },
    }


def validated(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    validate(cfg, SCHEMA)
    lgconfig.check(cfg)
    return cfg


def test_expansion_names_sources_and_steps(text_corpus):
    cfg = validated(base_config(text_corpus))
    models = lgconfig.expand_checkpoints(cfg)
    assert list(models) == ["tiny.step_0", "tiny.step_4", "tiny.step_10", "pythia.step0", "pythia.step1000"]
    assert models["tiny.step_4"]["source"] == "./results/train/small/checkpoints/step_4"
    assert models["tiny.step_4"]["checkpoint"] == {"of": "tiny", "step": 4, "run": "small"}
    assert models["tiny.step_4"]["corpora"] == ["ctx"] and "checkpoints" not in models["tiny.step_4"]
    assert models["pythia.step1000"]["revision"] == "step1000"
    assert models["pythia.step1000"]["source"] == "EleutherAI/pythia-14m"
    cfg["models"] = models
    assert lgconfig.checkpoint_families(cfg) == {
        "tiny": [("tiny.step_0", 0), ("tiny.step_4", 4), ("tiny.step_10", 10)],
        "pythia": [("pythia.step0", 0), ("pythia.step1000", 1000)],
    }
    assert lgconfig.expand_checkpoints(cfg) == models  # expanding twice changes nothing


def test_all_saved_steps_when_none_chosen(text_corpus):
    cfg = base_config(text_corpus)
    del cfg["models"]["tiny"]["checkpoints"]["steps"]
    names = list(lgconfig.expand_checkpoints(validated(cfg)))
    assert names[:6] == [f"tiny.step_{s}" for s in (0, 1, 2, 4, 8, 10)]


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"tiny": {"checkpoints": {"train": "nope"}}}, r"models\.tiny\.checkpoints\.train: no training run 'nope'"),
        ({"tiny": {"checkpoints": {"train": "small", "steps": [3]}}}, r"does not save steps \[3\]"),
        ({"tiny": {"source": "minilm", "checkpoints": {"train": "small"}}}, r"models\.tiny\.source: leave it out"),
        ({"tiny": {"checkpoints": {"train": "small"}, "init": "random"}}, r"models\.tiny\.init"),
        (
            {"pythia": {"source": "x/y", "checkpoints": ["main"]}},
            r"models\.pythia\.checkpoints: cannot read a training step",
        ),
        ({"pythia": {"checkpoints": ["step1"]}}, r"models\.pythia\.source is required"),
        ({"tiny.step_0": {"source": "minilm"}}, r"'tiny\.step_0' is used twice"),
        ({"plain": {"corpora": ["ctx"]}}, r"models\.plain\.source is required"),
    ],
)
def test_bad_checkpoint_entries_are_refused(text_corpus, patch, message):
    cfg = base_config(text_corpus)
    cfg["models"].update(patch)
    with pytest.raises(lgconfig.ConfigError, match=message):
        validated(cfg)


def test_unknown_training_corpus_is_refused(text_corpus):
    cfg = base_config(text_corpus)
    cfg["training"]["runs"]["small"]["corpus"] = "missing"
    with pytest.raises(lgconfig.ConfigError, match=r"training\.runs\.small\.corpus"):
        validated(cfg)


def test_dag_runs_every_analysis_over_checkpoints(tmp_path, text_corpus):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(base_config(text_corpus)))
    done = snakemake(tmp_path, "-n")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    assert counts["train_tokenizer"] == "1" and counts["train_model"] == "1" and counts["train_loss_figure"] == "1"
    assert counts["extract"] == "5" and counts["summary_merge"] == "5" and counts["attention"] == "5"
    assert counts["stream"] == "5"  # one stream shard per store feeds every analysis
    assert (
        counts["training_figure"] == "8" and counts["drift"] == "1"
    )  # (tiny, pythia) x (summary, attention, anisotropy, norm_variance)
    for step in (0, 4, 10):
        job = re.search(
            rf"rule extract:\n    input: (.*)\n    output: results/hidden/tiny\.step_{step}/ctx/states\.zarr", out
        )
        assert job and "results/train/small/checkpoints" in job.group(1)
    job = re.search(r"rule extract:\n    input: (.*)\n    output: results/hidden/pythia\.step1000/ctx", out)
    assert job and "train" not in job.group(1)
    for family in ("tiny", "pythia"):
        assert f"results/figures/dynamics/{family}/ctx/attention.png" in out


def test_plan_draws_checkpoints_over_training_and_runs_small_trained_models_on_one_thread(text_corpus):
    """Per-pair figures only of a family's last checkpoint; jobs running a small GPT-2 trained here take one thread."""
    from types import SimpleNamespace

    from layergeom.analyses.registry import ANALYSES
    from layergeom.dag import Dag

    cfg = validated(base_config(text_corpus))
    cfg["models"] = lgconfig.expand_checkpoints(cfg)
    plan = Dag(cfg)
    pair_figures = {t.split("/")[3] for t in plan.targets() if t.endswith(".png") and t.count("/") == 5}
    assert {"tiny.step_10", "pythia.step1000"} <= pair_figures
    assert not pair_figures & {"tiny.step_0", "tiny.step_4", "pythia.step0"}
    for name, spec in ANALYSES.items():  # an analysis without a training measure skips the earlier checkpoints
        models = {m for m, _ in plan.analysis_pairs(name)}
        if name == "layer_cka":  # only on models that set it
            assert not models
            continue
        assert ("tiny.step_4" in models) == bool(spec.training) and "tiny.step_10" in models, name
    assert plan.model_threads("tiny.step_4", 8) == 1 and plan.model_threads("pythia.step0", 8) == 8
    assert plan.extract_resources(SimpleNamespace(model="tiny.step_0"))["threads"] == 1
    big = validated({**base_config(text_corpus)})
    big["training"]["runs"]["small"].update(n_layer=24, n_embd=1024)
    big["models"] = lgconfig.expand_checkpoints(big)
    assert Dag(big).model_threads("tiny.step_4", 8) == 8
    assert Dag(big, cores=2).model_threads("tiny.step_4", 8) == 1 == Dag(cfg, cores=2).model_threads("pythia.step0", 8)
    assert Dag(cfg, cores=6).model_threads("pythia.step0", 8) == 3  # at most half the cores
