"""Find and load a model and its tokenizer: built-in names, local folders, hub ids, GGUF files."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from layergeom.extraction.sources import ModelSource, is_vision, resolve_source

log = logging.getLogger(__name__)

FINAL_NORM_NAMES = ("ln_f", "norm", "final_layer_norm", "decoder.final_layer_norm", "model.norm")


def select_device(name: str = "auto") -> torch.device:
    """The device to run on: ``auto`` picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def model_kind(config) -> str:
    """``decoder`` for causal language models, ``encoder`` for BERT-like ones, ``vision`` for vision transformers,
    from the config."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if is_vision(config.to_dict()):
        return "vision"
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"encoder-decoder models ({config.model_type}) are not supported")
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or getattr(config, "is_decoder", False):
        return "decoder"
    return "encoder"


def find_final_norm(model: torch.nn.Module) -> torch.nn.Module | None:
    """The norm applied after the last block of a base model, if it has one."""
    for name in FINAL_NORM_NAMES:
        try:
            return model.get_submodule(name)
        except AttributeError:
            continue
    return None


@dataclass
class LoadedModel:
    """A model ready for extraction, with what the store records about it."""

    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    kind: str
    n_layers: int
    d_model: int
    info: dict = field(default_factory=dict)


def _load_kwargs(source: ModelSource, revision: str | None) -> dict:
    kwargs: dict = {}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if revision:
        kwargs["revision"] = revision
    return kwargs


def load_error(source: ModelSource, where: str, err: Exception) -> str:
    """Why a model did not load: its local files, named, are damaged; or the hub id cannot be reached."""
    folder = Path(source.name_or_path)
    if not folder.is_dir():
        return (
            f"could not load model '{where}': not a local folder with model files and not "
            f"reachable on the Hugging Face hub from here ({err})"
        )
    files = [source.gguf_file] if source.gguf_file else sorted(p.name for p in folder.iterdir() if p.is_file())
    bad = [name for name in files if not readable(folder / name)]
    found = f"could not load model from the local folder {folder}"
    if not bad:
        return f"{found} (files: {', '.join(files)}): {type(err).__name__}: {err}"
    return f"{found} (damaged: {', '.join(bad)}): {type(err).__name__}: {err}; copy the model files again"


def readable(path: Path) -> bool:
    """Whether a JSON or safetensors file of a model folder parses (other files are not checked)."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(path, "pt") as handle:
                handle.keys()
    except Exception:  # json and safetensors raise several kinds; any means the file is damaged
        return False
    return True


#: top-level modules of a checkpoint that a base model legitimately leaves out (task heads, the pooler)
TASK_HEADS = ("lm_head", "cls", "pooler", "classifier", "pre_classifier", "qa_outputs", "score", "head")


def weight_mismatch(loading: dict, folder: str) -> str | None:
    """Why a checkpoint's weights disagree with its config (missing, unexpected or reshaped parameters of the base
    model, task heads aside), or None when they agree."""

    def outside_heads(keys) -> list[str]:
        return sorted(k for k in keys if k.split(".")[0] not in TASK_HEADS)

    missing, unexpected = (
        outside_heads(loading.get("missing_keys", ())),
        outside_heads(loading.get("unexpected_keys", ())),
    )
    reshaped = [f"{key} {tuple(saved)} -> {tuple(wanted)}" for key, saved, wanted in loading.get("mismatched_keys", ())]
    problems = [
        f"{len(keys)} {what} (first: {', '.join(keys[:3])})"
        for keys, what in (
            (missing, "parameters of the model are missing from the checkpoint"),
            (unexpected, "checkpoint weights are not used by the model"),
            (reshaped, "weights have another shape than the config gives"),
        )
        if keys
    ]
    if not problems:
        return None
    return (
        f"the weights in {folder} do not match its config.json: {'; '.join(problems)}. Fix config.json "
        "(for instance n_layer / num_hidden_layers) to describe the saved weights, or set init: random for an "
        "untrained baseline"
    )


def tokenizer_of(config, source: ModelSource, kwargs: dict):
    """The model's tokenizer: for a vision transformer, the patch tokens of its images."""
    from transformers import AutoTokenizer

    if config is not None and is_vision(config.to_dict()):
        from layergeom.extraction.images import PatchTokenizer

        return PatchTokenizer.of(config)
    return AutoTokenizer.from_pretrained(source.name_or_path, **kwargs)


def load_model(
    source: ModelSource,
    revision: str | None = None,
    init: str = "pretrained",
    seed: int = 0,
    kind: str = "auto",
    device: str = "auto",
    compute_dtype: str = "float32",
) -> LoadedModel:
    """Load the base model (no task head) and tokenizer; ``init='random'`` gives untrained weights."""
    from transformers import AutoConfig, AutoModel

    kwargs = _load_kwargs(source, revision)
    dtype = getattr(torch, compute_dtype)
    where = source.name_or_path + (f" @ {revision}" if revision else "")
    try:
        gguf_weights = source.gguf_file and init != "random"  # AutoModel reads a GGUF file's config itself
        config = None if gguf_weights else AutoConfig.from_pretrained(source.name_or_path, **kwargs)
        tokenizer = tokenizer_of(config, source, kwargs)
        if init == "random":
            torch.manual_seed(seed)
            model = AutoModel.from_config(config, dtype=dtype)
        else:
            model, loading = AutoModel.from_pretrained(
                source.name_or_path, dtype=dtype, output_loading_info=True, **kwargs
            )
    except Exception as err:  # transformers and safetensors raise many kinds; say which files were read
        raise OSError(load_error(source, where, err)) from err
    mismatch = None if init == "random" else weight_mismatch(loading, where)
    if mismatch:
        raise ValueError(mismatch)
    dev = select_device(device)
    model.eval().to(dev)
    config = model.config
    resolved_kind = model_kind(config) if kind == "auto" else kind
    n_layers = int(getattr(config, "num_hidden_layers", 0) or config.n_layer)
    d_model = int(getattr(config, "hidden_size", 0) or config.n_embd)
    info = {
        "model_type": config.model_type,
        "source": source.name_or_path,
        "gguf_file": source.gguf_file,
        "revision": revision,
        "init": init,
    }
    log.info(
        "loaded %s (%s, %s, %d layers, d=%d) on %s", where, config.model_type, resolved_kind, n_layers, d_model, dev
    )
    return LoadedModel(model, tokenizer, dev, resolved_kind, n_layers, d_model, info)


def load_model_entry(entry: dict, settings: dict) -> LoadedModel:
    """Load the model of a validated config entry with its extraction settings (device, compute dtype)."""
    return load_model(
        resolve_source(entry["source"], entry.get("gguf_file")),
        revision=entry.get("revision"),
        init=entry["init"],
        seed=entry["seed"],
        kind=entry["kind"],
        device=settings["device"],
        compute_dtype=settings["compute_dtype"],
    )
