"""Config validation: the schema and the checks refuse bad entries with a message naming the field."""

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from layergeom import config as lgconfig
from layergeom import models

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
GOOD = {"corpora": {"bbc": {"source": "bbc"}}, "models": {"minilm": {"source": "minilm"}}}


def validated(cfg):
    cfg = copy.deepcopy(cfg)
    validate(cfg, SCHEMA)
    lgconfig.check(cfg)
    return cfg


def test_default_config_is_valid_and_filled():
    cfg = validated(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    assert cfg["extraction"]["dtype"] == "float16"
    assert cfg["corpora"]["bbc"]["max_words"] == 64
    assert lgconfig.pairs(cfg) == [(m, c) for m in cfg["models"] for c in cfg["corpora"]]


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"corpora": {"bbc": {"source": "bbc", "colour": 1}}}, "colour"),
        ({"corpora": {"bbc": {"source": "bbc", "max_words": "many"}}}, "max_words"),
        ({"extraction": {"chunk_tokens": -5}}, "chunk_tokens"),
        ({"corpora": {"bbc": {"source": "wiki"}}}, "source"),
        ({"models": {"m": {"source": "minilm", "init": "zeros"}}}, "init"),
        ({"corpora": {"bbc": {"source": "bbc", "sample": {"fraction": 2}}}}, "fraction"),
    ],
)
def test_schema_refuses_with_field_named(patch, field):
    with pytest.raises(Exception) as err:
        validated({**GOOD, **patch})
    assert field in str(err.value)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"corpora": {"mine": {"source": "text", "path": "/no/such/folder"}}}, r"corpora\.mine\.path: no such file"),
        ({"corpora": {"mine": {"source": "jsonl"}}}, r"corpora\.mine\.path is required"),
        ({"models": {"m": {"source": "./no/such/model"}}}, r"models\.m\.source: no such model"),
        ({"models": {"m": {"source": "minilm", "corpora": ["nope"]}}}, r"models\.m\.corpora: unknown corpus"),
        ({"corpora": {"bbc": {"source": "bbc", "min_words": 70}}}, r"corpora\.bbc: min_words"),
        ({"models": {"m": {"source": "minilm", "extraction": {"chunk_tokens": 100, "shard_tokens": 10}}}}, "shard_tokens"),
    ],
)
def test_checks_refuse_with_field_named(patch, message):
    with pytest.raises(lgconfig.ConfigError, match=message):
        validated({**GOOD, **patch})


def test_gguf_without_gguf_package_is_refused(tmp_path, monkeypatch):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name))
    with pytest.raises(lgconfig.ConfigError, match=r"models\.m\.source: .*install the 'gguf'"):
        validated({**GOOD, "models": {"m": {"source": str(model)}}})


def test_builtin_models_resolve():
    assert Path(models.resolve_source("minilm").name_or_path, "config.json").exists()
    smol = models.resolve_source("smollm2-135m")
    assert smol.gguf_file.endswith(".gguf")
