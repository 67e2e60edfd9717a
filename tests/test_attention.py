"""Self-attention statistics: hooked queries and keys against the weights, entropies against the model's attention."""

import math

import numpy as np
import polars as pl
import pytest
import torch

from layergeom.analyses.attention.heads import (
    head_stats,
    heads_table,
    sequences_from_tokens,
    write_heads,
)
from layergeom.extraction.hooks import entropy_and_max
from layergeom.extraction.models import LoadedModel
from layergeom.extraction.sequences import Sequences, token_table


def _loaded(model, kind: str) -> LoadedModel:
    model.eval()
    n_layers = model.config.num_hidden_layers
    return LoadedModel(model, None, torch.device("cpu"), kind, n_layers, model.config.hidden_size)


def _gpt2():
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    return GPT2Model(
        GPT2Config(vocab_size=60, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=0, eos_token_id=0)
    )


def _llama():
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    return LlamaModel(
        LlamaConfig(
            vocab_size=60,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=48,
            max_position_embeddings=32,
        )
    )


def _bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(
        BertConfig(
            vocab_size=60,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=48,
            max_position_embeddings=32,
        )
    )


def _sequences(seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = [7, 12, 3, 12, 9]
    ids = [rng.integers(0, 60, n) for n in lengths]
    keep = [rng.random(n) < 0.7 for n in lengths]
    seqs = Sequences(
        np.arange(len(ids)), np.arange(len(ids)), [None] * len(ids), ids, [np.zeros(n, bool) for n in lengths]
    )
    return seqs, keep


@torch.no_grad()
def _projections(model, layer: int, h: torch.Tensor):
    """q (T, H*hd) and k (T, Hkv*hd) of block ``layer`` (1-based) from its weights, in float64."""
    h = h.double()
    if hasattr(model, "h"):  # GPT-2: ln_1, then c_attn (Conv1D, weight is in x out)
        block = model.h[layer - 1]
        x = torch.nn.functional.layer_norm(
            h, h.shape[-1:], block.ln_1.weight.double(), block.ln_1.bias.double(), block.ln_1.eps
        )
        qkv = x @ block.attn.c_attn.weight.double() + block.attn.c_attn.bias.double()
        d = h.shape[-1]
        return qkv[:, :d], qkv[:, d : 2 * d]
    if hasattr(model, "layers"):  # Llama: RMSNorm, then q_proj / k_proj (before the rotation)
        block = model.layers[layer - 1]
        x = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + block.input_layernorm.variance_epsilon)
        x = x * block.input_layernorm.weight.double()
        return x @ block.self_attn.q_proj.weight.double().T, x @ block.self_attn.k_proj.weight.double().T
    att = model.encoder.layer[layer - 1].attention.self  # BERT: query / key on the layer input
    return (
        h @ att.query.weight.double().T + att.query.bias.double(),
        h @ att.key.weight.double().T + att.key.bias.double(),
    )


def _reference(model, kind, seqs, keep):
    """Per layer: sums of q, k over kept tokens, and entropy / max sums of the model's own attention rows."""
    model.set_attn_implementation("eager")
    n_layers = model.config.num_hidden_layers
    ref = {
        layer: {"q": 0.0, "k": 0.0, "ent": 0.0, "max": 0.0, "n": 0, "uniform": 0.0} for layer in range(1, n_layers + 1)
    }
    for ids, sel in zip(seqs.ids, keep):
        with torch.no_grad():
            out = model(input_ids=torch.as_tensor(ids)[None], output_hidden_states=True, output_attentions=True)
        n = len(ids)
        for layer in range(1, n_layers + 1):
            q, k = _projections(model, layer, out.hidden_states[layer - 1][0])
            p = out.attentions[layer - 1][0].double().numpy()  # (H, T, T)
            logp = np.log(np.where(p > 0, p, 1.0))
            r = ref[layer]
            r["q"] = r["q"] + q.numpy()[sel].sum(0)
            r["k"] = r["k"] + k.numpy()[sel].sum(0)
            r["ent"] = r["ent"] + (-(p * logp).sum(-1))[:, sel].sum(1)
            r["max"] = r["max"] + p.max(-1)[:, sel].sum(1)
            r["n"] += int(sel.sum())
            keys = np.arange(1, n + 1) if kind == "decoder" else np.full(n, n)
            r["uniform"] += float(np.log(keys)[sel].sum())
    return ref


@pytest.mark.parametrize(
    "build, kind, kv_heads", [(_gpt2, "decoder", 4), (_llama, "decoder", 2), (_bert, "encoder", 4)]
)
def test_hooked_stats_match_weights_and_model_attention(build, kind, kv_heads):
    model = build()
    seqs, keep = _sequences()
    sites = head_stats(_loaded(model, kind), seqs, keep, batch_tokens=30)  # several padded batches
    ref = _reference(model, kind, seqs, keep)
    for site in sites:
        r = ref[site.layer]
        assert site.n == r["n"] and site.k_sum.shape == (kv_heads, 8)
        np.testing.assert_allclose(site.q_sum.ravel(), r["q"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(site.k_sum.ravel(), r["k"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(site.entropy_sum, r["ent"], rtol=1e-5)
        np.testing.assert_allclose(site.max_sum, r["max"], rtol=1e-5)
        np.testing.assert_allclose(site.uniform_sum, r["uniform"], rtol=1e-12)
    table = heads_table(sites, "m", None, rotary=kind == "decoder" and build is _llama, blocks=len(sites))
    assert table["relative_depth"].to_list() == [row / len(sites) for row in table["layer"]]
    assert table.height == 2 * 4 and set(table["kv_head"]) == set(range(kv_heads))
    assert table["qk_rotation"][0] == ("before rotation" if build is _llama else "none")
    row = table.filter((pl.col("layer") == 2) & (pl.col("head") == 3)).row(0, named=True)
    q = ref[2]["q"][24:32] / ref[2]["n"]
    k_head = 3 // (4 // kv_heads)
    k = ref[2]["k"][8 * k_head : 8 * k_head + 8] / ref[2]["n"]
    np.testing.assert_allclose(row["mean_q_norm"], np.linalg.norm(q), rtol=1e-5)
    np.testing.assert_allclose(row["qk_cos"], q @ k / np.linalg.norm(q) / np.linalg.norm(k), rtol=1e-4)


def test_gpt2_attention_from_hooked_q_k():
    """The entropy of softmax(q k^T / sqrt(hd)) with a causal mask, q and k from the weights, is the hooked one."""
    model = _gpt2()
    seqs, keep = _sequences(1)
    keep = [np.ones(len(x), bool) for x in seqs.ids]
    sites = head_stats(_loaded(model, "decoder"), seqs, keep, batch_tokens=64)
    total = np.zeros(4)
    for ids in seqs.ids:
        with torch.no_grad():
            h = model(input_ids=torch.as_tensor(ids)[None], output_hidden_states=True).hidden_states[0][0]
            q, k = _projections(model, 1, h)
        n = len(ids)
        q, k = q.numpy().reshape(n, 4, 8).transpose(1, 0, 2), k.numpy().reshape(n, 4, 8).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(8) + np.triu(np.full((n, n), -np.inf), 1)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        total += -(p * np.log(np.where(p > 0, p, 1))).sum(-1).sum(-1)
    np.testing.assert_allclose(sites[0].entropy_sum, total, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_uniform_attention_entropy_is_log_n(n):
    entropy, largest = entropy_and_max(torch.full((3, n), 1.0 / n, dtype=torch.float64))
    np.testing.assert_allclose(entropy.numpy(), math.log(n), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(largest.numpy(), 1.0 / n, rtol=1e-12)


def test_one_hot_attention_has_zero_entropy():
    weights = torch.zeros(2, 5)
    weights[:, 3] = 1
    entropy, largest = entropy_and_max(weights)
    assert entropy.tolist() == [0.0, 0.0] and largest.tolist() == [1.0, 1.0]


def test_sequences_rebuilt_from_shuffled_token_table():
    seqs, _ = _sequences()

    class Tok:
        def convert_ids_to_tokens(self, ids):
            return [str(i) for i in ids]

    order = np.array([3, 0, 4, 1, 2])
    table = token_table(seqs, order, Tok())
    keep = table["position"].to_numpy() % 2 == 0
    rebuilt, flags = sequences_from_tokens(table, keep)
    assert rebuilt.seq_id.tolist() == list(range(5))
    for i in range(5):
        np.testing.assert_array_equal(rebuilt.ids[i], seqs.ids[i])
        np.testing.assert_array_equal(flags[i], np.arange(len(seqs.ids[i])) % 2 == 0)


def test_layer_subset_keeps_the_stored_blocks(tiny_gpt2, tmp_path):
    class Tok:
        def convert_ids_to_tokens(self, ids):
            return [str(i) for i in ids]

    seqs, _ = _sequences()
    token_table(seqs, np.arange(len(seqs.ids)), Tok()).write_parquet(tmp_path / "tokens.parquet")
    model = {"source": str(tiny_gpt2), "init": "pretrained", "seed": 0, "kind": "auto"}
    settings = {"device": "cpu", "compute_dtype": "float32", "batch_tokens": 64}
    selection = {"include_special": True, "exclude_first_position": False}
    tokens = tmp_path / "tokens.parquet"
    full = write_heads(model, {**settings, "layers": None}, selection, "m", tokens, tmp_path / "a", 1)
    subset = write_heads(model, {**settings, "layers": [0, 2]}, selection, "m", tokens, tmp_path / "b", 1)
    assert sorted(set(full["layer"])) == [1, 2] and set(subset["layer"]) == {2}
    assert subset.equals(full.filter(pl.col("layer") == 2))
