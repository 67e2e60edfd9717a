"""Token sequences to extract: one per sentence, or C windows of exactly T tokens from documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from layergeom.extraction.models import LoadedModel


@dataclass(frozen=True)
class Sequences:
    """Tokenised sequences with their metadata; ``ids[i]`` and ``special[i]`` are 1-D arrays; ``pixels`` holds the
    images (sequences, channels, size, size) of an image corpus, which the model reads instead of the ids."""

    seq_id: np.ndarray
    doc_id: np.ndarray
    topic: list[str | None]
    ids: list[np.ndarray]
    special: list[np.ndarray]
    pixels: np.ndarray | None = None

    def lengths(self) -> np.ndarray:
        """Token count of every sequence."""
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def _control_ids(tokenizer) -> np.ndarray:
    """Ids of control tokens (CLS, SEP, BOS, EOS, ...); the unknown token stands for text and is not special."""
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    return np.fromiter(special, dtype=np.int64, count=len(special))


def sentence_sequences(tokenizer, sentences: pl.DataFrame, max_length: int) -> Sequences:
    """Each sentence becomes one sequence, with the tokenizer's special tokens, truncated at max_length."""
    texts = sentences["text"].to_list()
    encoded = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    ids = [np.asarray(x, dtype=np.int64) for x in encoded]
    control = _control_ids(tokenizer)
    return Sequences(
        seq_id=np.arange(len(ids), dtype=np.int64),
        doc_id=sentences["doc_id"].to_numpy().astype(np.int64),
        topic=sentences["topic"].to_list(),
        ids=ids,
        special=[np.isin(x, control) for x in ids],
    )


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after any text (e.g. [CLS] and [SEP])."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    return [], []


def context_sequences(
    tokenizer, documents: pl.DataFrame, length: int, count: int, per_document: int, seed: int
) -> Sequences:
    """C windows of exactly ``length`` tokens (special tokens included), at most per_document per document."""
    prefix, suffix = special_frame(tokenizer)
    inner = length - len(prefix) - len(suffix)
    if inner < 1:
        raise ValueError(f"sequences.length={length} leaves no room for text between the special tokens")
    encoded = tokenizer(documents["text"].to_list(), add_special_tokens=False)["input_ids"]
    rng = np.random.default_rng(seed)
    candidates = []  # (document row, window start)
    for row, doc in enumerate(encoded):
        n_windows = len(doc) // inner
        if n_windows:
            starts = np.sort(rng.choice(n_windows, size=min(per_document, n_windows), replace=False)) * inner
            candidates.extend((row, int(s)) for s in starts)
    if len(candidates) < count:
        raise ValueError(
            f"only {len(candidates)} windows of {length} tokens can be cut (per_document={per_document}); "
            f"asked for sequences.count={count}: lower count or length, or raise per_document"
        )
    chosen = sorted(candidates[i] for i in rng.choice(len(candidates), size=count, replace=False))
    ids, special = [], []
    control = _control_ids(tokenizer)
    frame = np.zeros(length, dtype=bool)
    frame[: len(prefix)] = True
    frame[length - len(suffix) :] = True
    for row, start in chosen:
        window = prefix + list(encoded[row][start : start + inner]) + suffix
        ids.append(np.asarray(window, dtype=np.int64))
        special.append(frame | np.isin(window, control))
    rows = [row for row, _ in chosen]
    return Sequences(
        seq_id=np.arange(count, dtype=np.int64),
        doc_id=documents["doc_id"].to_numpy()[rows].astype(np.int64),
        topic=[documents["topic"][r] for r in rows],
        ids=ids,
        special=special,
    )


def plan_batches(lengths: np.ndarray, batch_tokens: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sort sequences by length (longest first) and cut batches whose padded size fits batch_tokens."""
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = int(lengths[order[start]])  # longest in the batch, since sorted
        rows = max(1, batch_tokens // max(width, 1))
        batches.append(order[start : start + rows])
        start += rows
    return order, batches


def ordered_ids(seqs: Sequences, order: np.ndarray) -> np.ndarray:
    """Token ids of the sequences in ``order``, concatenated: the stored token order."""
    return np.concatenate([seqs.ids[i] for i in order]) if len(order) else np.zeros(0, np.int64)


def token_table(seqs: Sequences, order: np.ndarray, tokenizer) -> pl.DataFrame:
    """One row per stored token, sequences in ``order``, positions consecutive within a sequence."""
    lengths = seqs.lengths()[order]
    repeat = lambda values: np.repeat(np.asarray(values)[order], lengths)  # noqa: E731
    ids = ordered_ids(seqs, order)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)
    topics = np.asarray(seqs.topic, dtype=object)
    return pl.DataFrame(
        {
            "seq_id": repeat(seqs.seq_id),
            "doc_id": repeat(seqs.doc_id),
            "topic": pl.Series(np.repeat(topics[order], lengths).tolist(), dtype=pl.Utf8),
            "position": position,
            "token_id": ids,
            "token": tokenizer.convert_ids_to_tokens(ids.tolist()),
            "is_special": np.concatenate([seqs.special[i] for i in order]) if len(order) else np.zeros(0, bool),
        }
    )


def batches_in_range(
    lengths: np.ndarray, batches: list[np.ndarray], start: int, stop: int
) -> tuple[list[np.ndarray], int]:
    """The batches of a global plan whose tokens overlap stored tokens [start, stop), and the first one's offset.

    Batches are contiguous in token order, so every token is computed in the same batch whatever the shards.
    """
    sizes = np.fromiter((int(lengths[rows].sum()) for rows in batches), dtype=np.int64, count=len(batches))
    ends = np.cumsum(sizes)
    begins = ends - sizes
    chosen = np.flatnonzero((begins < stop) & (ends > start))
    if not len(chosen):
        return [], start
    return [batches[i] for i in chosen], int(begins[chosen[0]])


def build_sequences(
    loaded: LoadedModel, corpus_entry: dict, documents: pl.DataFrame, sentences: pl.DataFrame, max_length: int
) -> Sequences:
    """Sequences for the corpus entry's mode (``sentences``, ``contexts`` or ``images``); a vision model reads images
    only, a language model text only."""
    from layergeom.extraction.images import PatchTokenizer, image_sequences  # images.py builds on Sequences

    spec = corpus_entry["sequences"]
    vision = isinstance(loaded.tokenizer, PatchTokenizer)
    if vision != (spec["mode"] == "images"):
        model = "a vision model (it reads images)" if vision else "a language model (it reads text)"
        raise ValueError(f"the corpus has sequences.mode '{spec['mode']}' but the model is {model}")
    if vision:
        return image_sequences(loaded.tokenizer, documents, "image corpus")
    if spec["mode"] == "sentences":
        return sentence_sequences(loaded.tokenizer, sentences, max_length)
    if spec["length"] > max_length:
        raise ValueError(f"sequences.length={spec['length']} exceeds extraction.max_length={max_length}")
    return context_sequences(
        loaded.tokenizer, documents, spec["length"], spec["count"], spec["per_document"], spec["seed"]
    )
