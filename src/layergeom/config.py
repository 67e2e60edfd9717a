"""Checks and views of a validated workflow config that a JSON schema cannot express."""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from layergeom.extraction.sources import ModelSource, gguf_metadata, is_vision, resolve_source
from layergeom.training.checkpoints import checkpoint_model_name, checkpoint_steps, revision_step, step_folder

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(ValueError):
    """A config entry that cannot work; the message names the entry and the field."""


#: config sections of the previous release -> their name now (accepted for one release, with a warning).
RENAMED_SECTIONS = {"stats": "norm_variance"}
#: keys that moved from the analyses' sections to ``stream`` (one streaming pass feeds every analysis).
STREAM_KEYS = ("shards", "block_tokens")


def schema_problems(config: dict, schema: dict, limit: int = 5) -> list[str]:
    """Up to ``limit`` lines ``path: problem`` naming the offending key or value (a misspelled key with the closest
    known one); none when the config is valid."""
    lines = []
    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(map(str, error.absolute_path))
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = list(error.schema.get("properties") or {})
            for key in sorted(set(error.instance) - set(known)):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
                lines.append(f"{where + '.' if where else ''}{key}: unknown key ({hint})")
        elif error.validator == "required":
            lines.append(f"{where or '(top level)'}: {error.message}")
        else:
            value = repr(error.instance)
            value = value if len(value) <= 60 else value[:57] + "..."
            message = error.message if len(error.message) <= 100 else error.message[:97] + "..."
            lines.append(f"{where or '(top level)'} = {value}: {message}")
    return lines[:limit]


def check_schema(config: dict, schema_path: str | os.PathLike) -> None:
    """Raise a ConfigError of a few lines, the offending paths first, when the config breaks the schema."""
    problems = schema_problems(config, yaml.safe_load(Path(schema_path).read_text()))
    if problems:
        raise ConfigError("\n".join([*problems, "every key is described in config/README.md"]))


def _deep_update(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in recursively (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def apply_deprecations(config: dict) -> list[str]:
    """Rewrite the previous release's keys in place, before validation; one warning per rewritten key."""
    warnings = []
    stream = config.get("stream") or {}
    config["stream"] = stream
    for section in ("anisotropy", "posctx", "norm_variance", *RENAMED_SECTIONS):
        for key in STREAM_KEYS:
            if key not in (config.get(section) or {}):
                continue
            value = config[section].pop(key)
            warnings.append(f"{section}.{key} is now stream.{key} (one streaming pass feeds every analysis)")
            if key == "shards" and value is not None:
                stream["shards"] = max(int(stream.get("shards") or 1), int(value))
            elif value is not None and stream.get(key) is None:
                stream[key] = value
    for old, new in RENAMED_SECTIONS.items():
        if old in config:
            config[new] = _deep_update(config.get(new) or {}, config.pop(old) or {})
            warnings.append(f"config section '{old}' is now '{new}'; '{old}' is accepted until the next release")
    return warnings


def model_corpora(config: dict, model: str) -> list[str]:
    """Corpora a model runs on: its ``corpora`` list, or every corpus it can read (images for a vision model, text
    for a language model)."""
    chosen = config["models"][model].get("corpora")
    if chosen:
        return list(chosen)
    images = reads_images(config, model)
    return [name for name, entry in config["corpora"].items() if image_corpus(entry) == images]


def image_corpus(entry: dict) -> bool:
    """Whether a corpus entry's sequences are images."""
    return entry.get("sequences", {}).get("mode") == "images"


def reads_images(config: dict, model: str) -> bool:
    """Whether a model is a vision transformer: trained by a ``vit`` run, or a local folder whose config.json has an
    ``image_size`` and a ``patch_size``."""
    entry = config["models"][model]
    run = (entry.get("checkpoint") or {}).get("run") or (entry.get("checkpoints") or {}).get("train")
    runs = config.get("training", {}).get("runs", {})
    if isinstance(run, str) and run in runs:
        return runs[run]["architecture"] == "vit"
    return bool(entry.get("source")) and not entry.get("gguf_file") and vision_folder(entry["source"])


@functools.cache
def vision_folder(source: str) -> bool:
    """Whether a model ``source`` is a local folder whose config.json is a vision transformer's."""
    try:
        folder = resolve_source(source).name_or_path
    except (FileNotFoundError, ImportError, ValueError):
        return False
    return is_vision(local_config(folder) or {})


def pairs(config: dict) -> list[tuple[str, str]]:
    """Every (model, corpus) pair the workflow extracts."""
    return [(m, c) for m in config["models"] for c in model_corpora(config, m)]


#: extraction keys that change no stored or accumulated number (the mode picks the rules, the budget only groups
#: layers): no job's params, so adding them reruns nothing
NOT_HASHED = ("store", "accumulator_budget_gb")
#: what the stored bytes do not depend on either: every K gives the same store
NOT_IN_STORE = ("shards",)


def job_settings(settings: dict) -> dict:
    """Extraction settings as a job's params: those that change numbers."""
    return {key: value for key, value in settings.items() if key not in NOT_HASHED}


def store_settings(settings: dict) -> dict:
    """Job settings (or a model's override) less what the stored bytes do not depend on (the store's config hash)."""
    return {key: value for key, value in settings.items() if key not in NOT_IN_STORE}


def extraction_settings(config: dict, model: str) -> dict:
    """Global extraction settings with the model's overrides applied."""
    merged = dict(config.get("extraction", {}))
    merged.update(config["models"][model].get("extraction") or {})
    return merged


def run_checkpoint_steps(run: dict) -> list[int]:
    """Steps a training run saves."""
    return checkpoint_steps(run["steps"], run["checkpoint_every"], run["log_checkpoints"])


def run_checkpoint_dir(config: dict, run: str) -> str:
    """Folder of a training run's checkpoints, as a path (``./`` prefixed when relative)."""
    folder = os.path.join(config["results"], "train", run, "checkpoints")
    return folder if os.path.isabs(folder) else os.path.join(".", folder)


def _expand_entry(config: dict, name: str, entry: dict) -> dict[str, dict]:
    """One model entry per checkpoint of ``entry``, each marked with ``checkpoint: {of, step, run}``."""
    where = f"models.{name}.checkpoints"
    spec = entry["checkpoints"]
    base = {k: v for k, v in entry.items() if k != "checkpoints"}
    if base.get("init", "pretrained") != "pretrained":
        raise ConfigError(f"models.{name}.init: checkpoints are trained weights; leave init at 'pretrained'")
    if base.get("revision"):
        raise ConfigError(f"models.{name}.revision: give the revisions as the checkpoints list instead")
    out = {}
    if isinstance(spec, dict):
        run = spec["train"]
        runs = config.get("training", {}).get("runs", {})
        if run not in runs:
            raise ConfigError(f"{where}.train: no training run '{run}' (training.runs: {sorted(runs)})")
        if base.get("source"):
            raise ConfigError(f"models.{name}.source: leave it out with checkpoints.train (the run is the source)")
        saved = run_checkpoint_steps(runs[run])
        steps = sorted(set(spec.get("steps") or saved))
        missing = sorted(set(steps) - set(saved))
        if missing:
            raise ConfigError(f"{where}.steps: run '{run}' does not save steps {missing} (it saves {saved})")
        for step in steps:
            source = os.path.join(run_checkpoint_dir(config, run), step_folder(step))
            out[checkpoint_model_name(name, step_folder(step))] = {
                **base,
                "source": source,
                "checkpoint": {"of": name, "step": step, "run": run},
            }
        return out
    if not base.get("source"):
        raise ConfigError(f"models.{name}.source is required with a list of checkpoint revisions")
    for revision in spec:
        try:
            step = revision_step(revision)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from err
        out[checkpoint_model_name(name, revision)] = {
            **base,
            "revision": revision,
            "checkpoint": {"of": name, "step": step, "run": None},
        }
    return out


def expand_checkpoints(config: dict) -> dict[str, dict]:
    """The ``models`` mapping with every entry that has ``checkpoints`` replaced by one model per checkpoint."""
    out: dict[str, dict] = {}
    for name, entry in config["models"].items():
        expanded = _expand_entry(config, name, entry) if entry.get("checkpoints") else {name: entry}
        for model in expanded:
            if model in out or (model != name and model in config["models"]):
                raise ConfigError(f"models.{name}.checkpoints: model name '{model}' is used twice")
            if not NAME_PATTERN.match(model):
                raise ConfigError(f"models.{name}.checkpoints: '{model}' is not a valid model name")
        out.update(expanded)
    return out


def checkpoint_families(config: dict) -> dict[str, list[tuple[str, int]]]:
    """For every expanded checkpoints entry: its (model name, step) pairs in step order."""
    families: dict[str, list[tuple[str, int]]] = {}
    for model, entry in config["models"].items():
        if entry.get("checkpoint"):
            families.setdefault(entry["checkpoint"]["of"], []).append((model, entry["checkpoint"]["step"]))
    return {family: sorted(members, key=lambda m: m[1]) for family, members in families.items()}


def trained_runs(config: dict) -> dict[str, dict]:
    """The training run (architecture, vocab_size, ...) of every checkpoint family trained by the workflow."""
    runs = config.get("training", {}).get("runs", {})
    return {
        entry["checkpoint"]["of"]: runs[entry["checkpoint"]["run"]]
        for entry in config["models"].values()
        if entry.get("checkpoint") and entry["checkpoint"].get("run") in runs
    }


def entry_hash(*entries: Any) -> str:
    """A short stable hash of config entries, stored with outputs for provenance."""
    text = json.dumps(entries, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check(config: dict, base: Path = Path(".")) -> None:
    """Raise ConfigError for entries the schema accepts but that cannot run here."""
    for name, corpus in config["corpora"].items():
        where = f"corpora.{name}"
        source = corpus["source"]
        if source in ("text", "jsonl", "parquet"):
            if not corpus.get("path"):
                raise ConfigError(f"{where}.path is required for source '{source}'")
            path = base / corpus["path"]
            if not path.exists():
                raise ConfigError(f"{where}.path: no such file or folder: {path}")
        if (source == "digits") != image_corpus(corpus):
            raise ConfigError(f"{where}.sequences.mode: source 'digits' (images) takes mode 'images', and only it does")
        if source == "hf" and not corpus.get("hf"):
            raise ConfigError(f"{where}.hf (name, split) is required for source 'hf'")
        sample = corpus.get("sample", {})
        if sample.get("n_sentences") and sample.get("fraction"):
            raise ConfigError(f"{where}.sample: give n_sentences or fraction, not both")
        if corpus["min_words"] >= corpus["max_words"]:
            raise ConfigError(f"{where}: min_words must be smaller than max_words")
    for name, run in config.get("training", {}).get("runs", {}).items():
        if run["corpus"] not in config["corpora"]:
            raise ConfigError(f"training.runs.{name}.corpus: unknown corpus '{run['corpus']}'")
        if image_corpus(config["corpora"][run["corpus"]]) != (run["architecture"] == "vit"):
            raise ConfigError(
                f"training.runs.{name}.corpus: a {run['architecture']} run trains on "
                f"{'an image' if run['architecture'] == 'vit' else 'a text'} corpus; '{run['corpus']}' is not one"
            )
        if run["n_embd"] % run["n_head"]:
            raise ConfigError(f"training.runs.{name}: n_embd must be a multiple of n_head")
    for name, model in expand_checkpoints(config).items():
        where = f"models.{name}"
        unknown = set(model.get("corpora") or ()) - set(config["corpora"])
        if unknown:
            raise ConfigError(f"{where}.corpora: unknown corpus {sorted(unknown)}")
        images = reads_images({**config, "models": {name: model}}, name)
        unreadable = [c for c in model.get("corpora") or () if image_corpus(config["corpora"][c]) != images]
        if unreadable:
            raise ConfigError(
                f"{where}.corpora: {'a vision' if images else 'a language'} model cannot read corpus "
                f"'{unreadable[0]}' ({'text' if images else 'images'})"
            )
        settings = {**config.get("extraction", {}), **(model.get("extraction") or {})}
        shard = settings.get("shard_tokens")
        if shard and shard < settings["chunk_tokens"]:
            raise ConfigError(f"{where}: shard_tokens must be at least chunk_tokens")
        layers = settings.get("layers")
        if layers is not None and list(layers) != sorted(set(layers)):
            raise ConfigError(f"{where}: extraction.layers must be increasing layer indices without repeats: {layers}")
        run = (model.get("checkpoint") or {}).get("run")
        if run:  # a workflow-trained checkpoint: its folder is made by the train rule
            shape = (config["training"]["runs"][run]["n_layer"], config["training"]["runs"][run]["n_embd"])
        elif not model.get("source"):
            raise ConfigError(f"{where}.source is required (or checkpoints: {{train: <run>}})")
        else:
            try:
                source = resolve_source(model["source"], model.get("gguf_file"), base)
            except (FileNotFoundError, ImportError, ValueError) as err:
                raise ConfigError(f"{where}.source: {err}") from err
            shape = local_shape(source)
        check_top_k(config, name, shape[1])
        if covers_layer_cka(config, model):
            n_states = None if shape[0] is None else len(layers or range(shape[0] + 1))
            check_layer_cka(config, (model.get("checkpoint") or {}).get("of", name), n_states, shape[1])


def covers_layer_cka(config: dict, entry: dict) -> bool:
    """Whether layer_cka runs on a model: the section is enabled and the model's entry sets ``layer_cka``."""
    return bool((config.get("layer_cka") or {}).get("enabled")) and bool(entry.get("layer_cka"))


def layer_cka_bytes(n_states: int, d: int) -> int:
    """Bytes of every layer pair's cross products: L (L - 1) / 2 float64 d x d matrices for L stored layers."""
    return n_states * (n_states - 1) // 2 * d * d * 8


def check_layer_cka(config: dict, model: str, n_states: int | None, d: int | None) -> None:
    """A model entry's every-pair cross products fit ``layer_cka.max_gb`` where its shape is known before any job."""
    limit = config["layer_cka"]["max_gb"]
    if n_states is None or d is None or layer_cka_bytes(n_states, d) <= limit * 1e9:
        return
    raise ConfigError(
        f"models.{model}.layer_cka: its cross products need {layer_cka_bytes(n_states, d) / 1e9:.3g} GB for its "
        f"{n_states} stored layers (d = {d}), above layer_cka.max_gb = {limit}; set it to false, raise "
        "layer_cka.max_gb or store fewer layers (extraction.layers)"
    )


def local_config(folder: str) -> dict | None:
    """A local model folder's config.json; None for a hub id, a folder without one (a GGUF file) or one that does
    not parse (the extraction job names it)."""
    try:
        entry = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return entry if isinstance(entry, dict) else None


#: config.json keys of the hidden size d, in the order they are looked for
HIDDEN_SIZE_KEYS = ("hidden_size", "n_embd", "d_model")


def local_hidden_size(folder: str) -> int | None:
    """The hidden size d in a local model folder's config.json (``hidden_size``, ``n_embd`` or ``d_model``)."""
    return first_int(local_config(folder) or {}, HIDDEN_SIZE_KEYS)


def first_int(entry: dict, keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` in ``entry`` with an integer value."""
    return next((entry[k] for k in keys if isinstance(entry.get(k), int)), None)


def local_shape(source: ModelSource) -> tuple[int | None, int | None]:
    """(transformer blocks, hidden size d) of a local model folder's config.json or GGUF file header, None where
    unknown before its job (a hub id)."""
    if source.gguf_file:
        path = Path(source.name_or_path) / source.gguf_file
        try:
            arch = gguf_metadata(path, {"general.architecture"}).get("general.architecture")
            fields = gguf_metadata(path, {f"{arch}.block_count", f"{arch}.embedding_length"})
        except (OSError, ValueError, UnicodeDecodeError):
            return None, None  # the extraction job names what is wrong with the file
        return fields.get(f"{arch}.block_count"), fields.get(f"{arch}.embedding_length")
    entry = local_config(source.name_or_path) or {}
    return first_int(entry, ("num_hidden_layers", "n_layer", "num_layers")), first_int(entry, HIDDEN_SIZE_KEYS)


def check_top_k(config: dict, model: str, d: int | None) -> None:
    """``dimensions.top_k`` names dimensions of the model: at most its hidden size d where known before any job."""
    top_k = (config.get("dimensions") or {}).get("top_k", 1)
    if d is not None and top_k > d:
        raise ConfigError(f"dimensions.top_k = {top_k} exceeds the hidden size d = {d} of models.{model}")
