"""Up-front checks of extraction inputs: text files, tokenizer and sequence lengths, before any forward pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # not imported at run time: the corpus job reads text without loading torch
    from layergeom.extraction.models import LoadedModel
    from layergeom.extraction.sequences import Sequences

MAX_UNK_SHARE = 0.1  # more unknown tokens than this means a missing or wrong tokenizer
MIN_VOCAB = 32  # a vocabulary smaller than this is a placeholder, not a tokenizer


class InputError(ValueError):
    """An input that would give meaningless hidden states."""


def unk_share(tokenizer, seqs: Sequences) -> float:
    """Share of the text tokens (special tokens excluded) that are the tokenizer's unknown token."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not seqs.ids:
        return 0.0
    ids = np.concatenate(seqs.ids)
    text = ~np.concatenate(seqs.special)
    return float((ids[text] == unk).sum() / max(int(text.sum()), 1))


def check_tokenizer(loaded: LoadedModel, seqs: Sequences, model_name: str) -> None:
    """Refuse a tokenizer with a placeholder vocabulary or one that maps much of the corpus to the unknown token."""
    source = loaded.info.get("source")
    size, share = len(loaded.tokenizer), unk_share(loaded.tokenizer, seqs)
    if size < MIN_VOCAB or share > MAX_UNK_SHARE:
        raise InputError(
            f"models.{model_name}: the tokenizer loaded from {source} has {size} entries and maps {share:.0%} of the "
            f"corpus tokens to {loaded.tokenizer.unk_token!r} (limits: {MIN_VOCAB} entries, {MAX_UNK_SHARE:.0%}); "
            "are the tokenizer files (tokenizer.json, vocab.txt, vocab.json + merges.txt) in the model folder?"
        )


def position_limit(loaded: LoadedModel) -> int | None:
    """The longest sequence the model's position embeddings allow, if its config says."""
    config = loaded.model.config
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(getattr(config, key, None), int):
            return int(getattr(config, key))
    return None


def check_positions(loaded: LoadedModel, seqs: Sequences, model_name: str, corpus_name: str, spec: dict) -> None:
    """Refuse sequences longer than the model's positions, naming the config field to change."""
    limit, lengths = position_limit(loaded), seqs.lengths()
    if limit is None or not len(lengths) or int(lengths.max()) <= limit:
        return
    sequences = spec["corpus"]["sequences"]
    if sequences["mode"] == "contexts":
        field = f"corpora.{corpus_name}.sequences.length={sequences['length']}"
    else:
        field = f"extraction.max_length={spec['settings']['max_length']} (model {model_name})"
    raise InputError(
        f"{field}: {int((lengths > limit).sum())} sequences of corpus '{corpus_name}' are longer (up to "
        f"{int(lengths.max())} tokens) than the {limit} positions of model '{model_name}'; set it to at most {limit}"
    )


def check_inputs(loaded: LoadedModel, seqs: Sequences, model_name: str, corpus_name: str, spec: dict) -> None:
    """Every up-front check of an extraction job."""
    check_tokenizer(loaded, seqs, model_name)
    check_positions(loaded, seqs, model_name, corpus_name, spec)
