"""Your own data, the standard ways: layergeom as a module of another workflow, from another working
directory with its own config/config.yaml, and what `--configfile` does to the workflow's own config."""

import re

import polars as pl
import pytest
import yaml
from runs import ROOT, snakemake
from test_workflow import tiny_config

TARGET = "results/tables/summary/docs.csv"


@pytest.fixture
def own_config(tmp_path, text_corpus, tiny_bert, tiny_gpt2):
    """A working directory whose config/config.yaml names one model and one corpus."""
    config = tiny_config(text_corpus, tiny_bert, tiny_gpt2)
    config = {**config, "corpora": {"docs": config["corpora"]["docs"]}, "models": {"bert": config["models"]["bert"]}}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path, config


def planned_models(out: str) -> set[str]:
    """Models named in the wildcards of a dry run's jobs."""
    return set(re.findall(r"^    wildcards: .*?model=([^,\s]+)", out, re.MULTILINE))


def test_module_in_your_own_workflow(own_config):
    workdir, _ = own_config
    done = snakemake(
        workdir, "mine/docs_norms_head.csv", config=None, snakefile=ROOT / ".test" / "module" / "Snakefile"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert pl.read_csv(workdir / TARGET)["model"].unique().to_list() == ["bert"]
    assert (workdir / "mine" / "docs_norms_head.csv").read_text().startswith("model,corpus,layer")
    assert (workdir / "results" / "hidden" / "bert" / "docs" / "states.zarr").is_dir()


def test_another_working_directory_reads_only_its_config(own_config):
    workdir, _ = own_config
    dry = snakemake(workdir, "-n", TARGET, config=None)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_models(dry.stdout) == {"bert"}  # not the repository's default models


def test_configfile_adds_models_and_replace_workflow_config_replaces_them(own_config, tiny_gpt2):
    workdir, _ = own_config
    (workdir / "mine.yaml").write_text(yaml.safe_dump({"models": {"gpt": {"source": str(tiny_gpt2)}}}))
    merged = snakemake(workdir, "-n", TARGET, config="mine.yaml")
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert planned_models(merged.stdout) == {"bert", "gpt"}
    (workdir / "mine.yaml").write_text(yaml.safe_dump({**own_config[1], "models": {"gpt": {"source": str(tiny_gpt2)}}}))
    replaced = snakemake(workdir, "--replace-workflow-config", "-n", TARGET, config="mine.yaml")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert planned_models(replaced.stdout) == {"gpt"}
