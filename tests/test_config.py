"""Config validation: the schema and the checks refuse bad entries with a message naming the field."""

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from layergeom import config as lgconfig
from layergeom.extraction import sources

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")
GOOD = {"corpora": {"bbc": {"source": "bbc"}}, "models": {"minilm": {"source": "minilm"}}}


def validated(cfg: dict) -> dict:
    """The config as the workflow sees it: previous-release keys rewritten, validated, checked."""
    cfg = copy.deepcopy(cfg)
    lgconfig.apply_deprecations(cfg)
    validate(cfg, SCHEMA)
    lgconfig.check(cfg)
    return cfg


def default_config() -> dict:
    """config/config.yaml as loaded by Snakemake."""
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def previous_release(cfg: dict) -> dict:
    """The config as the previous release spelled it: `stats`, and shards/block_tokens in every streamed section."""
    old = copy.deepcopy(cfg)
    stream = old.pop("stream")
    old["stats"] = old.pop("norm_variance")
    for section in ("anisotropy", "posctx", "stats"):
        old[section].update(stream)
    return old


def test_default_config_is_valid_and_filled():
    raw = default_config()
    unchanged = copy.deepcopy(raw)
    assert lgconfig.apply_deprecations(raw) == [] and raw == unchanged
    cfg = validated(raw)
    assert cfg["stream"] == {"shards": 1, "block_tokens": None}
    assert cfg["extraction"]["dtype"] == "float16"
    assert cfg["corpora"]["bbc"]["max_words"] == 64
    text = [("minilm", "bbc"), ("minilm", "bbc_contexts"), ("smollm2", "bbc"), ("smollm2", "bbc_contexts")]
    trained = [("gpt2tiny", "bbc_contexts"), ("gpt2byte", "bbc_contexts"), ("vit", "digits")]
    assert lgconfig.pairs(cfg) == text + trained  # a model reads the corpora of its modality unless it names some


def test_previous_release_config_validates_as_the_current_one():
    old = previous_release(default_config())
    warnings = lgconfig.apply_deprecations(copy.deepcopy(old))
    assert len(warnings) == len(set(warnings)) == 7  # the section rename and 3 sections x 2 moved keys
    assert validated(old) == validated(default_config())


@pytest.mark.parametrize("stream_shards, expected", [(None, 4), (1, 4), (8, 8)])
def test_deprecated_keys_are_moved_and_merged(stream_shards, expected):
    cfg = default_config()
    if stream_shards is None:
        del cfg["stream"]
    else:
        cfg["stream"]["shards"] = stream_shards
    cfg["stats"] = {"min_count": 5, "shards": 4, "exclude": {"token_ids": [0]}}
    cfg["anisotropy"].update(shards=2, block_tokens=4096)
    cfg["posctx"]["shards"] = 3
    warnings = lgconfig.apply_deprecations(cfg)
    assert len(warnings) == len(set(warnings)) == 5
    assert sum("'stats'" in w and "'norm_variance'" in w for w in warnings) == 1
    assert sum("stream.shards" in w for w in warnings) == 3
    assert sum("stream.block_tokens" in w for w in warnings) == 1
    assert "stats" not in cfg
    nv = cfg["norm_variance"]
    assert (nv["min_count"], nv["max_count"]) == (5, 100000)  # the user's value wins, the default stays
    assert nv["exclude"] == {"token_ids": [0], "first_position": True, "outlier_factor": 10}
    assert cfg["stream"] == {"shards": expected, "block_tokens": 4096}
    assert all(
        key not in cfg[s] for s in ("anisotropy", "posctx", "norm_variance") for key in ("shards", "block_tokens")
    )
    validate(cfg, SCHEMA)


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"corpora": {"bbc": {"source": "bbc", "colour": 1}}}, "colour"),
        ({"corpora": {"bbc": {"source": "bbc", "max_words": "many"}}}, "max_words"),
        ({"extraction": {"chunk_tokens": -5}}, "chunk_tokens"),
        ({"corpora": {"bbc": {"source": "wiki"}}}, "source"),
        ({"models": {"m": {"source": "minilm", "init": "zeros"}}}, "init"),
        ({"corpora": {"bbc": {"source": "bbc", "sample": {"fraction": 2}}}}, "fraction"),
        ({"extraction": {"shards": 0}}, "shards"),
        ({"extraction": {"layers": [-1, 2]}}, "layers"),
        ({"models": {"m": {"source": "minilm", "extraction": {"layers": []}}}}, "layers"),
        ({"dimensions": {"top_k": 0}}, "top_k"),
        ({"dimensions": {"top_k": 11}}, "top_k"),
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
        (
            {"models": {"m": {"source": "minilm", "extraction": {"chunk_tokens": 100, "shard_tokens": 10}}}},
            "shard_tokens",
        ),
        ({"extraction": {"layers": [2, 0]}}, r"models\.minilm: extraction\.layers must be increasing"),
        (
            {"models": {"minilm": {"source": "minilm", "layer_cka": True}}, "layer_cka": {"max_gb": 0.01}},
            r"models\.minilm\.layer_cka: its cross products need 0\.0248 GB for its 7 stored layers \(d = 384\), "
            r"above layer_cka\.max_gb = 0\.01",
        ),
        (  # the shape of a GGUF model from its header
            {"models": {"s": {"source": "smollm2-135m", "layer_cka": True}}},
            r"models\.s\.layer_cka: .* need 1\.23 GB for its 31 stored layers \(d = 576\)",
        ),
    ],
)
def test_checks_refuse_with_field_named(patch, message):
    with pytest.raises(lgconfig.ConfigError, match=message):
        validated({**GOOD, **patch})


def test_layer_cka_counts_the_stored_layers_of_a_subset():
    """SmolLM2's 4 stored layers need 6 x 576^2 x 8 B = 16 MB; a workflow-trained run's shape is its config's."""
    small = {"source": "smollm2-135m", "layer_cka": True, "extraction": {"layers": [0, 10, 20, 30]}}
    validated({**GOOD, "models": {"s": small}})
    assert lgconfig.layer_cka_bytes(4, 576) == 6 * 576**2 * 8
    cfg = default_config()
    cfg["layer_cka"]["max_gb"] = 0.02  # minilm needs 0.0248
    with pytest.raises(lgconfig.ConfigError, match=r"models\.minilm\.layer_cka: .* 0\.0248 GB"):
        validated(cfg)
    cfg["models"]["minilm"]["layer_cka"] = False
    cfg["layer_cka"]["max_gb"] = 0.005
    with pytest.raises(lgconfig.ConfigError, match=r"models\.gpt2tiny\.layer_cka: .* 0\.00524 GB .* 5 stored layers"):
        validated(cfg)
    cfg["layer_cka"]["enabled"] = False  # nothing runs: nothing to refuse
    validated(cfg)


def test_gguf_header_reader_reads_the_shape_and_names_a_truncated_file(tmp_path):
    source = sources.resolve_source("smollm2-135m")
    assert lgconfig.local_shape(source) == (30, 576)
    path = Path(source.name_or_path) / source.gguf_file
    cut = tmp_path / "cut.gguf"
    with open(path, "rb") as whole:
        cut.write_bytes(whole.read(64))
    with pytest.raises(ValueError, match="cut.gguf: the GGUF header ends early"):
        sources.gguf_metadata(cut, {"llama.block_count"})
    assert lgconfig.local_shape(sources.ModelSource(str(tmp_path), "cut.gguf")) == (None, None)


def test_gguf_without_gguf_package_is_refused(tmp_path, monkeypatch):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name))
    with pytest.raises(lgconfig.ConfigError, match=r"models\.m\.source: .*install the 'gguf'"):
        validated({**GOOD, "models": {"m": {"source": str(model)}}})


def test_builtin_models_resolve():
    assert Path(sources.resolve_source("minilm").name_or_path, "config.json").exists()
    smol = sources.resolve_source("smollm2-135m")
    assert smol.gguf_file.endswith(".gguf")


@pytest.mark.parametrize(
    "typo, expected",
    [
        ({"model": {}}, "model: unknown key (did you mean 'models'?)"),
        ({"anisotropy": {"idd": {}}}, "anisotropy.idd: unknown key (did you mean 'id'?)"),
        ({"extraction": {"dtype": "float13"}}, "extraction.dtype = 'float13': 'float13' is not one of"),
    ],
)
def test_config_errors_are_short_and_name_the_key(tmp_path, text_corpus, tiny_bert, typo, expected):
    import subprocess

    import yaml
    from runs import snakemake_command

    config = {
        "corpora": {"docs": {"source": "text", "path": str(text_corpus)}},
        "models": {"b": {"source": str(tiny_bert)}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, **typo}))
    done = subprocess.run(snakemake_command(tmp_path, "-n"), capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0 and expected in output, output[-3000:]
    assert len(output.splitlines()) <= 15, output
