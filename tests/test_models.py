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
