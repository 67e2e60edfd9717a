"""Extraction: stored vectors equal a direct forward, the token table lines up, nothing padded."""

import json

import numpy as np
import polars as pl
import pytest
import torch
import zarr
from transformers import AutoModel, AutoTokenizer

from layergeom.config import ConfigError
from layergeom.corpus import build_corpus
from layergeom.extraction.forward import NonFiniteError
from layergeom.extraction.models import load_model, resolve_source
from layergeom.extraction.sequences import batches_in_range, build_sequences, plan_batches
from layergeom.extraction.writer import BlockWriter, Extraction, extract, finalize_store
from layergeom.io.shards import shard_ids
from layergeom.io.store import open_hidden, read_tokens

SETTINGS = {"dtype": "float16", "chunk_tokens": 16, "shard_tokens": None, "batch_tokens": 64, "max_length": 64}
SENTENCES = {"mode": "sentences", "length": 128, "count": 1, "per_document": 1, "seed": 0}


@pytest.fixture(scope="module")
def corpus(text_corpus):
    entry = {
        "source": "text",
        "path": str(text_corpus),
        "min_words": 3,
        "max_words": 64,
        "topic": None,
        "max_documents": None,
        "sample": {"n_sentences": 12, "fraction": None, "seed": 0},
    }
    return build_corpus(entry)


def run(model_dir, corpus, out, mode=SENTENCES, settings=SETTINGS, residual=False):
    loaded = load_model(resolve_source(str(model_dir)))
    seqs = build_sequences(loaded, {"sequences": mode}, corpus[0], corpus[1], settings["max_length"])
    attrs = {"model": "tiny", "config_hash": "x", "mode": mode["mode"]}
    extract(loaded, seqs, out / "states.zarr", out / "tokens.parquet", settings, attrs, residual)
    return open_hidden(out / "states.zarr"), read_tokens(out / "tokens.parquet")


def direct(model_dir, ids, before_final_norm=False):
    """Hidden states of one unpadded sequence from a plain forward with output_hidden_states=True."""
    model = AutoModel.from_pretrained(model_dir).eval()
    seen = {}
    if before_final_norm:
        model.ln_f.register_forward_pre_hook(lambda _m, a: seen.__setitem__("x", a[0]))
    with torch.no_grad():
        hs = list(model(input_ids=torch.as_tensor([ids]), output_hidden_states=True).hidden_states)
    if before_final_norm:
        hs[-1] = seen["x"]
    return torch.stack(hs)[:, 0].numpy()


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_gpt2"])
def test_stored_vectors_equal_direct_forward(name, corpus, tmp_path, request):
    model_dir = request.getfixturevalue(name)
    hidden, tokens = run(model_dir, corpus, tmp_path)
    tok = AutoTokenizer.from_pretrained(model_dir)
    sentences = corpus[1]["text"].to_list()
    expected_ids = [tok(s)["input_ids"] for s in sentences]
    assert hidden.shape == (3, sum(map(len, expected_ids)), 32)  # no padding stored
    assert tokens.height == hidden.shape[1]
    for seq_id, rows in tokens.with_row_index().group_by("seq_id", maintain_order=True):
        rows = rows.sort("position")
        idx = rows["index"].to_numpy()
        assert np.array_equal(np.diff(idx), np.ones(len(idx) - 1))  # contiguous
        assert rows["position"].to_list() == list(range(len(idx)))
        assert rows["token_id"].to_list() == expected_ids[seq_id[0]]
        want = direct(model_dir, expected_ids[seq_id[0]])
        got = hidden[:, idx[0] : idx[-1] + 1].astype(np.float32)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
    assert tokens.filter(pl.col("token") == tok.unk_token).height < tokens.height / 4
    special = tokens.filter(pl.col("is_special"))["token"].unique().to_list()
    assert set(special) <= set(tok.all_special_tokens)
    assert hidden.attrs["kind"] == ("encoder" if name == "tiny_bert" else "decoder")
    assert hidden.attrs["layer_names"] == ["embeddings", "block_1", "block_2"]


def test_gpt2_last_layer_before_and_after_final_norm(tiny_gpt2, corpus, tmp_path):
    after, tokens = run(tiny_gpt2, corpus, tmp_path / "a")
    before, _ = run(tiny_gpt2, corpus, tmp_path / "b", residual=True)
    assert after.attrs["last_layer_after_final_norm"] is True
    assert before.attrs["last_layer_after_final_norm"] is False
    ids = tokens.filter(pl.col("seq_id") == 0)["token_id"].to_list()
    rows = np.flatnonzero(tokens["seq_id"].to_numpy() == 0)
    want = direct(tiny_gpt2, ids, before_final_norm=True)[-1]
    np.testing.assert_allclose(before[-1, rows[0] : rows[-1] + 1].astype(np.float32), want, rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(before[:-1], after[:-1])


def test_contexts_mode_has_exact_length_and_topics(tiny_bert, corpus, tmp_path):
    mode = {"mode": "contexts", "length": 12, "count": 5, "per_document": 2, "seed": 0}
    hidden, tokens = run(tiny_bert, corpus, tmp_path, mode=mode)
    assert hidden.shape[1] == 5 * 12
    counts = tokens.group_by("seq_id").len()
    assert counts["len"].to_list() == [12] * 5
    first = tokens.filter(pl.col("position") == 0)
    assert first["token"].to_list() == ["[CLS]"] * 5
    assert tokens.filter(pl.col("position") == 11)["token"].to_list() == ["[SEP]"] * 5
    assert set(tokens["topic"]) <= {"sport", "tech"}
    with pytest.raises(ValueError, match="only .* windows"):
        run(tiny_bert, corpus, tmp_path / "x", mode={**mode, "count": 10_000})


def test_killed_run_resumes_and_matches_a_clean_run(tiny_gpt2, corpus, tmp_path, monkeypatch):
    clean, _ = run(tiny_gpt2, corpus, tmp_path / "clean")
    calls = {"n": 0}
    original = BlockWriter._flush

    def dying_flush(self, final):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        original(self, final)

    monkeypatch.setattr(BlockWriter, "_flush", dying_flush)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_gpt2, corpus, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "states.zarr").exists()  # nothing a rerun would trust
    progress = json.loads((tmp_path / "resumed" / ".states.zarr.regions" / "0-of-1.json").read_text())
    assert 0 < progress["completed_tokens"] < clean.shape[1]
    monkeypatch.setattr(BlockWriter, "_flush", original)
    resumed, _ = run(tiny_gpt2, corpus, tmp_path / "resumed")
    np.testing.assert_array_equal(resumed[:], clean[:])
    assert not (tmp_path / "resumed" / ".states.zarr.partial").exists()
    assert not (tmp_path / "resumed" / ".states.zarr.regions").exists()


def test_overflow_names_the_layer(tiny_gpt2, corpus, tmp_path):
    loaded = load_model(resolve_source(str(tiny_gpt2)))
    with torch.no_grad():
        loaded.model.h[0].mlp.c_proj.bias.fill_(1e5)  # block_1's output overflows float16
    seqs = build_sequences(loaded, {"sequences": SENTENCES}, corpus[0], corpus[1], 64)
    with pytest.raises(NonFiniteError, match="layer 'block_1'.*float32"):
        extract(loaded, seqs, tmp_path / "s.zarr", tmp_path / "t.parquet", SETTINGS, {"config_hash": "x"})
    assert not (tmp_path / "s.zarr").exists()


def test_sharded_store_equals_unsharded(tiny_bert, corpus, tmp_path):
    plain, _ = run(tiny_bert, corpus, tmp_path / "a")
    sharded, _ = run(tiny_bert, corpus, tmp_path / "b", settings={**SETTINGS, "shard_tokens": 64})
    assert sharded.shards == (1, 64, 32)
    np.testing.assert_array_equal(plain[:], sharded[:])


def test_plan_batches_respects_token_budget():
    lengths = np.array([5, 40, 7, 40, 12, 3])
    order, batches = plan_batches(lengths, 80)
    assert list(lengths[order]) == sorted(lengths, reverse=True)
    assert np.array_equal(np.concatenate(batches), order)
    assert all(len(b) * lengths[b].max() <= 80 or len(b) == 1 for b in batches)


@pytest.mark.slow
def test_embedded_gguf_decoder_matches_direct_forward(corpus, tmp_path):
    """SmolLM2 from its GGUF file (about 30 s to de-quantise): stored float32 vectors equal a direct forward."""
    source = resolve_source("smollm2-135m")
    settings = {**SETTINGS, "dtype": "float32"}
    loaded = load_model(source)
    seqs = build_sequences(loaded, {"sequences": SENTENCES}, corpus[0], corpus[1].head(3), 64)
    extract(loaded, seqs, tmp_path / "s.zarr", tmp_path / "t.parquet", settings, {"config_hash": "x"})
    hidden, tokens = open_hidden(tmp_path / "s.zarr"), read_tokens(tmp_path / "t.parquet")
    assert hidden.shape[0] == 31 and hidden.attrs["kind"] == "decoder"
    rows = np.flatnonzero(tokens["seq_id"].to_numpy() == 0)
    with torch.no_grad():
        out = loaded.model(input_ids=torch.as_tensor([seqs.ids[0]]), output_hidden_states=True)
    want = torch.stack(out.hidden_states)[:, 0].numpy()
    np.testing.assert_allclose(hidden[:, rows[0] : rows[-1] + 1], want, rtol=1e-4, atol=1e-2)
    assert np.abs(want).max() > 1000  # the massive activations are really there


def test_batches_in_range_cover_each_token_once_per_shard():
    lengths = np.array([5, 3, 9, 1, 4, 7, 2])
    _, batches = plan_batches(lengths, 12)
    sizes = [int(lengths[rows].sum()) for rows in batches]
    begins = np.cumsum([0] + sizes)[:-1].tolist()
    total = int(lengths.sum())
    for start, stop in [(0, 8), (8, 16), (16, total)]:
        chosen, first = batches_in_range(lengths, batches, start, stop)
        idx = [i for i, b in enumerate(batches) if any(b is c for c in chosen)]
        assert idx == list(range(idx[0], idx[-1] + 1))
        assert first == begins[idx[0]] <= start
        assert begins[idx[-1]] + sizes[idx[-1]] >= stop
        assert all(begins[i] < stop and begins[i] + sizes[i] > start for i in idx)
    assert batches_in_range(lengths, batches, total, total) == ([], total)


def store_files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_three_shard_jobs_write_the_same_bytes_as_one(tiny_gpt2, corpus, tmp_path, monkeypatch):
    run(tiny_gpt2, corpus, tmp_path / "one")
    loaded = load_model(resolve_source(str(tiny_gpt2)))
    seqs = build_sequences(loaded, {"sequences": SENTENCES}, corpus[0], corpus[1], 64)
    attrs = {"model": "tiny", "config_hash": "x", "mode": "sentences"}
    states, tokens = tmp_path / "three" / "states.zarr", tmp_path / "three" / "tokens.parquet"
    states.parent.mkdir()
    Extraction(loaded, seqs, SETTINGS, attrs).prepare(states, tokens)
    for shard in ("1-of-3", "0-of-3"):  # each shard in its own job, in any order
        Extraction(loaded, seqs, SETTINGS, attrs).write_region(states, shard)
    original, calls = BlockWriter._flush, []

    def dying_flush(self, final):
        calls.append(final)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        original(self, final)

    monkeypatch.setattr(BlockWriter, "_flush", dying_flush)
    with pytest.raises(KeyboardInterrupt):  # the last shard is killed after its first block
        Extraction(loaded, seqs, SETTINGS, attrs).write_region(states, "2-of-3")
    monkeypatch.setattr(BlockWriter, "_flush", original)
    with pytest.raises(RuntimeError, match="2-of-3.json: shard 2-of-3 wrote tokens"):
        finalize_store(states, tokens, shard_ids(3))
    Extraction(loaded, seqs, SETTINGS, attrs).write_region(states, "2-of-3")
    finalize_store(states, tokens, shard_ids(3))
    assert store_files(states) == store_files(tmp_path / "one" / "states.zarr")
    assert tokens.read_bytes() == (tmp_path / "one" / "tokens.parquet").read_bytes()
    assert not (tmp_path / "three" / ".states.zarr.regions").exists()


def test_layer_subset_stores_those_layers_with_their_indices(tiny_gpt2, corpus, tmp_path):
    full, _ = run(tiny_gpt2, corpus, tmp_path / "all")
    subset, _ = run(tiny_gpt2, corpus, tmp_path / "sub", settings={**SETTINGS, "layers": [0, 2]})
    assert subset.shape[0] == 2 and subset.attrs["layers"] == [0, 2] and subset.attrs["n_layers"] == 2
    assert subset.attrs["layer_names"] == ["embeddings", "block_2"]
    np.testing.assert_array_equal(subset[:], full[:][[0, 2]])
    assert zarr.open_group(str(tmp_path / "sub" / "states.zarr"), mode="r")["layer"][:].tolist() == [0, 2]
    with pytest.raises(ConfigError, match="extraction.layers of model 'tiny': \\[3\\] beyond its 2 blocks"):
        run(tiny_gpt2, corpus, tmp_path / "bad", settings={**SETTINGS, "layers": [0, 3]})
