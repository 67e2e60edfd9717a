"""Checks and views of a validated workflow config that a JSON schema cannot express."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from layergeom.models import resolve_source


class ConfigError(ValueError):
    """A config entry that cannot work; the message names the entry and the field."""


def model_corpora(config: dict, model: str) -> list[str]:
    """Corpora a model runs on: its ``corpora`` list, or every corpus."""
    chosen = config["models"][model].get("corpora")
    return list(chosen) if chosen else list(config["corpora"])


def pairs(config: dict) -> list[tuple[str, str]]:
    """Every (model, corpus) pair the workflow extracts."""
    return [(m, c) for m in config["models"] for c in model_corpora(config, m)]


def extraction_settings(config: dict, model: str) -> dict:
    """Global extraction settings with the model's overrides applied."""
    merged = dict(config.get("extraction", {}))
    merged.update(config["models"][model].get("extraction") or {})
    return merged


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
        if source == "hf" and not corpus.get("hf"):
            raise ConfigError(f"{where}.hf (name, split) is required for source 'hf'")
        sample = corpus.get("sample", {})
        if sample.get("n_sentences") and sample.get("fraction"):
            raise ConfigError(f"{where}.sample: give n_sentences or fraction, not both")
        if corpus["min_words"] >= corpus["max_words"]:
            raise ConfigError(f"{where}: min_words must be smaller than max_words")
    for name, model in config["models"].items():
        where = f"models.{name}"
        unknown = set(model_corpora(config, name)) - set(config["corpora"])
        if unknown:
            raise ConfigError(f"{where}.corpora: unknown corpus {sorted(unknown)}")
        try:
            resolve_source(model["source"], model.get("gguf_file"), base)
        except (FileNotFoundError, ImportError, ValueError) as err:
            raise ConfigError(f"{where}.source: {err}") from err
        settings = extraction_settings(config, name)
        shard = settings.get("shard_tokens")
        if shard and shard < settings["chunk_tokens"]:
            raise ConfigError(f"{where}: shard_tokens must be at least chunk_tokens")
