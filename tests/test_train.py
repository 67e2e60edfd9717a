"""Training: schedules, a few-step run whose checkpoints load and continue, and resumption after a crash."""

import json
import math

import numpy as np
import polars as pl
import pytest
import torch
from conftest import TOPICS

from layergeom.training import train as lgtrain
from layergeom.training.checkpoints import checkpoint_steps, revision_step

RUN = {
    "corpus": "docs",
    "architecture": "gpt2",
    "patch_size": 2,
    "vocab_size": 300,
    "min_frequency": 1,
    "n_layer": 2,
    "n_embd": 32,
    "n_head": 2,
    "context_length": 16,
    "steps": 6,
    "batch_size": 4,
    "learning_rate": 3e-3,
    "warmup_steps": 2,
    "min_lr_ratio": 0.1,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "dropout": 0.0,
    "eval_fraction": 0.25,
    "eval_batches": 2,
    "log_checkpoints": True,
    "checkpoint_every": None,
    "seed": 0,
    "device": "cpu",
}


def test_checkpoint_steps():
    assert checkpoint_steps(10) == [0, 1, 2, 4, 8, 10]
    assert checkpoint_steps(8, every=3) == [0, 1, 2, 3, 4, 6, 8]
    assert checkpoint_steps(10, every=5, log_spaced=False) == [0, 5, 10]
    assert revision_step("step143000") == 143000
    with pytest.raises(ValueError, match="main"):
        revision_step("main")


def test_batches_cover_each_epoch_once_and_repeat_exactly():
    rows = np.concatenate([lgtrain.batch_rows(10, 4, step, seed=3) for step in range(5)])
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:20]) == list(range(10))
    np.testing.assert_array_equal(lgtrain.batch_rows(10, 4, 2, seed=3), rows[8:12])


def test_learning_rate_schedule():
    rates = [lgtrain.learning_rate(s, 1.0, 4, 20, 0.1) for s in range(21)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert rates[4] == pytest.approx(1.0) and rates[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))


def test_token_blocks_join_documents_with_end_of_text():
    class Tok:
        eos_token_id = 0

        def __call__(self, texts, add_special_tokens):
            return {"input_ids": [[int(c) for c in t] for t in texts]}

    blocks = lgtrain.token_blocks(Tok(), ["123", "45", "678"], 4)  # 11 tokens with separators: 2 blocks
    np.testing.assert_array_equal(blocks, [[1, 2, 3, 0], [4, 5, 0, 6]])


def _documents() -> pl.DataFrame:
    texts = [" ".join(s[i:] + s[:i]) * 3 for s in TOPICS.values() for i in range(4)]
    return pl.DataFrame({"doc_id": range(len(texts)), "text": texts})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    docs = _documents()
    tok = lgtrain.train_tokenizer(docs["text"].to_list(), RUN["vocab_size"], 1, RUN["context_length"])
    data = lgtrain.prepare_data(tok, docs, RUN)
    out = tmp_path_factory.mktemp("train") / "checkpoints"
    table = lgtrain.train(RUN, tok, data, out, "cpu")
    return tok, data, out, table


def test_few_steps_write_checkpoints_that_load_and_continue(trained):
    from transformers import AutoModel, AutoTokenizer, GPT2LMHeadModel

    tok, data, out, table = trained
    assert sorted(p.name for p in out.iterdir()) == [f"step_{s}" for s in (0, 1, 2, 4, 6)]
    assert table["step"].to_list() == list(range(7)) and table["checkpoint"].sum() == 5
    assert np.isfinite(table["loss"].drop_nulls().to_numpy()).all() and table["loss"].null_count() == 1
    assert np.isfinite(table["eval_loss"].drop_nulls().to_numpy()).all() and table["eval_loss"].drop_nulls().len() == 5
    assert table["loss"][0] is None and table["eval_loss"][0] == pytest.approx(math.log(len(tok)), rel=0.1)
    for step in (0, 1, 2, 4, 6):
        folder = out / f"step_{step}"
        state = json.loads((folder / "trainer_state.json").read_text())
        assert state["step"] == step and state["tokens"] == step * 4 * 16
        assert not (folder / lgtrain.RESUME_FILE).exists()
        assert AutoModel.from_pretrained(folder).config.n_layer == 2
        assert AutoTokenizer.from_pretrained(folder)("the match")["input_ids"] == tok("the match")["input_ids"]
    first = AutoModel.from_pretrained(out / "step_0").wte.weight
    assert not torch.equal(first, AutoModel.from_pretrained(out / "step_6").wte.weight)
    model = GPT2LMHeadModel.from_pretrained(out / "step_6")
    model.train()
    optimizer = lgtrain.make_optimizer(model, RUN)
    ids = torch.as_tensor(data.train[:4])
    losses = []
    for _ in range(2):  # continue training from the last checkpoint
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and losses[1] < losses[0]


def test_interrupted_run_resumes_from_its_last_checkpoint(trained, tmp_path, monkeypatch):
    tok, data, out, table = trained
    real = lgtrain.learning_rate

    def crash_at_step_5(step, *args):
        if step == 4:  # the update after step 4 was saved
            raise KeyboardInterrupt
        return real(step, *args)

    monkeypatch.setattr(lgtrain, "learning_rate", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        lgtrain.train(RUN, tok, data, tmp_path / "checkpoints", "cpu")
    partial = tmp_path / ".checkpoints.partial"
    assert sorted(p.name for p in partial.iterdir()) == ["step_0", "step_1", "step_2", "step_4"]
    monkeypatch.setattr(lgtrain, "learning_rate", real)
    resumed = lgtrain.train(RUN, tok, data, tmp_path / "checkpoints", "cpu")
    assert not partial.exists()
    assert resumed.equals(table)
    from safetensors.torch import load_file

    a = load_file(out / "step_6" / "model.safetensors")
    b = load_file(tmp_path / "checkpoints" / "step_6" / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
