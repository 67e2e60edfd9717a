"""What a store was computed from: content hashes of the model's files and of the token sequences.

Only file names relative to the model folder and file contents enter a fingerprint (no time stamps,
no absolute paths), so one config gives the same fingerprint, and the same store bytes, in any folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from layergeom.extraction.sequences import Sequences
from layergeom.extraction.sources import ModelSource

NOT_MODEL_SUFFIXES = (".pt",)  # optimizer and RNG state of a workflow-trained checkpoint: never loaded


def model_files(source: ModelSource) -> list[Path]:
    """The local files a model is loaded from: its GGUF file, or the files of its folder; none for a hub id."""
    folder = Path(source.name_or_path)
    if not folder.is_dir():
        return []
    if source.gguf_file:
        return [folder / source.gguf_file]
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix not in NOT_MODEL_SUFFIXES
    )


def files_digest(files: list[Path]) -> str:
    """sha256 over each file's name and contents, in the given order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def sequences_digest(seqs: Sequences) -> str:
    """sha256 of the token ids of every sequence (covers the corpus text and the tokenizer), and of the pixels of an
    image corpus (the model reads them, not the ids)."""
    digest = hashlib.sha256(seqs.lengths().tobytes())
    for ids in seqs.ids:
        digest.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    if seqs.pixels is not None:
        digest.update(np.ascontiguousarray(seqs.pixels, dtype=np.float32).tobytes())
    return digest.hexdigest()


def fingerprint(source: ModelSource, revision: str | None, seqs: Sequences) -> dict[str, str]:
    """The store's ``fingerprint`` attribute: the model's files (or hub id and revision) and the sequences."""
    files = model_files(source)
    model = f"sha256:{files_digest(files)}" if files else f"hub:{source.name_or_path}@{revision or 'main'}"
    return {"model": model, "sequences": f"sha256:{sequences_digest(seqs)}"}


def differences(old: dict, new: dict) -> list[str]:
    """Names of the fingerprint entries (and ``config_hash``) in which two stores' attributes differ."""
    before, after = old.get("fingerprint") or {}, new.get("fingerprint") or {}
    changed = [f"fingerprint.{key}" for key in sorted({*before, *after}) if before.get(key) != after.get(key)]
    return (["config_hash"] if old.get("config_hash") != new.get("config_hash") else []) + changed
