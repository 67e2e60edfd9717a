"""What a store records about its inputs: the layers kept, the model's attributes, the config hash and fingerprint."""

from __future__ import annotations

from importlib.metadata import version

import zarr

from layergeom import __version__
from layergeom.config import ConfigError, entry_hash, store_settings
from layergeom.extraction.fingerprint import differences, fingerprint
from layergeom.extraction.forward import HiddenStates
from layergeom.extraction.models import LoadedModel
from layergeom.extraction.sequences import (
    Sequences,
)
from layergeom.extraction.sources import resolve_source


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the stored numbers."""
    return {"layergeom": __version__, **{name: version(name) for name in ("torch", "transformers", "zarr", "numpy")}}


def layers_to_store(settings: dict, n_blocks: int, model: str) -> list[int]:
    """Model layer indices to store (0 = embeddings, i = block i): ``extraction.layers``, or all when null."""
    layers = settings.get("layers")
    if layers is None:
        return list(range(n_blocks + 1))
    beyond = [i for i in layers if i > n_blocks]
    if beyond:
        raise ConfigError(
            f"extraction.layers of model '{model}': {beyond} beyond its {n_blocks} blocks (indices 0..{n_blocks})"
        )
    return list(layers)


def model_attrs(loaded: LoadedModel, runner: HiddenStates, settings: dict, n_tokens: int) -> dict:
    """Store attributes that describe the model's stored layers and the extraction."""
    return {
        "layer_names": runner.names,
        "layers": runner.layers,
        "n_layers": loaded.n_layers,
        "d_model": loaded.d_model,
        "kind": loaded.kind,
        "dtype": settings["dtype"],
        "n_tokens": n_tokens,
        "versions": library_versions(),
    }


def changed_inputs(array: zarr.Array, attrs: dict, shape: tuple[int, int, int]) -> list[str]:
    """What differs between a partial store and this run's inputs: config hash, fingerprint parts, shape."""
    return differences(dict(array.attrs), attrs) + ([] if tuple(array.shape) == shape else ["shape"])


def job_attrs(spec: dict, model_name: str, corpus_name: str, seqs: Sequences) -> dict:
    """Store attributes of an extraction job: model, corpus, sequence mode, the config hash and the fingerprint."""
    model, corpus = spec["model"], spec["corpus"]
    mode = corpus["sequences"]["mode"]
    return {
        "model": model_name,
        "model_source": model["source"],
        "revision": model.get("revision"),
        "init": model["init"],
        "residual_before_final_norm": model["residual_before_final_norm"],
        "corpus": corpus_name,
        "mode": mode,
        "sequence_length": corpus["sequences"]["length"] if mode == "contexts" else None,
        "config_hash": entry_hash(store_spec(spec)),
        "fingerprint": fingerprint(
            resolve_source(model["source"], model.get("gguf_file")), model.get("revision"), seqs
        ),
    }


def store_spec(spec: dict) -> dict:
    """What the stored bytes depend on: the spec without the shard count (in the settings and the model's override)."""
    model = {key: value for key, value in spec["model"].items() if key != "extraction"}
    if store_settings(spec["model"].get("extraction") or {}):  # an override of only shards is no override
        model["extraction"] = store_settings(spec["model"]["extraction"])
    return {**spec, "model": model, "settings": store_settings(spec["settings"])}
