"""Model loading: local folders, random initialisation, unknown models, kinds and devices."""

import numpy as np
import pytest
import torch

from layergeom.extraction.models import find_final_norm, load_model, resolve_source, select_device


def test_random_init_keeps_architecture_but_not_weights(tiny_bert):
    trained = load_model(resolve_source(str(tiny_bert)))
    random_a = load_model(resolve_source(str(tiny_bert)), init="random", seed=1)
    random_b = load_model(resolve_source(str(tiny_bert)), init="random", seed=1)
    w = lambda m: m.model.embeddings.word_embeddings.weight.detach().numpy()  # noqa: E731
    assert w(trained).shape == w(random_a).shape
    assert not np.allclose(w(trained), w(random_a))
    np.testing.assert_array_equal(w(random_a), w(random_b))
    assert random_a.kind == "encoder" and random_a.n_layers == 2 and random_a.d_model == 32


def test_decoder_kind_and_final_norm(tiny_gpt2, tiny_bert):
    gpt = load_model(resolve_source(str(tiny_gpt2)))
    assert gpt.kind == "decoder"
    assert find_final_norm(gpt.model) is gpt.model.ln_f
    assert load_model(resolve_source(str(tiny_bert)), kind="decoder").kind == "decoder"


def test_unknown_hub_model_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="could not load model 'no-such-org/no-such-model @ step1'"):
        load_model(resolve_source("no-such-org/no-such-model"), revision="step1")


def test_paths_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model"):
        resolve_source(str(tmp_path / "missing"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a .gguf file"):
        resolve_source(str(tmp_path / "weights.bin"))


def test_device_choice():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in {"cpu", "cuda", "mps"}


@pytest.mark.parametrize("change", [+1, -1])
def test_weights_that_disagree_with_the_config_are_refused(tiny_gpt2, tmp_path, change):
    import json
    import shutil

    folder = tmp_path / "gpt"
    shutil.copytree(tiny_gpt2, folder)
    config = json.loads((folder / "config.json").read_text())
    config["n_layer"] += change
    (folder / "config.json").write_text(json.dumps(config))
    what = "missing from the checkpoint" if change > 0 else "not used by the model"
    with pytest.raises(ValueError, match=f"weights in {folder} do not match its config.json: .*{what}.*init: random"):
        load_model(resolve_source(str(folder)))
    assert load_model(resolve_source(str(folder)), init="random").n_layers == config["n_layer"]


def test_a_checkpoint_with_a_task_head_loads(tiny_gpt2, tmp_path):
    from transformers import GPT2LMHeadModel

    GPT2LMHeadModel.from_pretrained(tiny_gpt2).save_pretrained(tmp_path / "lm")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        if (tiny_gpt2 / name).exists():
            (tmp_path / "lm" / name).write_bytes((tiny_gpt2 / name).read_bytes())
    assert load_model(resolve_source(str(tmp_path / "lm"))).n_layers == 2
