"""Shared fixtures: tiny real transformers models saved with save_pretrained, and a tiny corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

TOPICS = {
    "sport": [
        "The team won the match after a late goal in the second half.",
        "Fans cheered as the striker scored twice against the visitors.",
        "The coach said the players showed great spirit in the final.",
        "A new stadium will open next season for the home club.",
    ],
    "tech": [
        "The company released a faster chip for mobile phones this week.",
        "Engineers said the new software update fixes several security flaws.",
        "Online shoppers used their phones more than ever this year.",
        "The firm plans to build a larger data centre near the city.",
    ],
}


def _corpus_text() -> str:
    return " ".join(s for sents in TOPICS.values() for s in sents)


@pytest.fixture(scope="session")
def text_corpus(tmp_path_factory) -> Path:
    """A folder corpus: one sub-folder per topic, several multi-sentence documents in each."""
    root = tmp_path_factory.mktemp("corpus")
    for topic, sents in TOPICS.items():
        (root / topic).mkdir()
        for i in range(3):
            doc = f"Headline number {i}\n\n" + " ".join(sents[i:] + sents[:i]) + "\n" + " ".join(sents)
            (root / topic / f"{i:03d}.txt").write_text(doc)
    (root / "tech" / "empty.txt").write_text("  \n")
    return root


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT with a word-piece tokenizer, saved to a folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny_bert")
    words = sorted({w.strip(".,").lower() for w in _corpus_text().split()})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *letters,
        *("##" + c for c in letters),
        *".,0123456789",
        *words,
    ]
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(dict.fromkeys(vocab))})
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer GPT-2 with a byte-level BPE tokenizer trained here, saved to a folder."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny_gpt2")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([_corpus_text()] * 5, vocab_size=400, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128)
    GPT2Model(config).save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.fixture
def store_reads(monkeypatch) -> list[tuple[int, int]]:
    """(layer, first token) of every block read from a zarr array from now on, in the order read."""
    import zarr

    reads: list[tuple[int, int]] = []
    read = zarr.Array.__getitem__

    def counted(self, key):
        reads.append((key[0], key[1].start))
        return read(self, key)

    monkeypatch.setattr(zarr.Array, "__getitem__", counted)
    return reads
