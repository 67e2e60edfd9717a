"""Images as token sequences: the digits corpus, patch tokens, a ViT trained by the workflow, its extraction."""

import numpy as np
import polars as pl
import pytest
import torch
from snakemake.utils import validate

from layergeom import config as lgconfig
from layergeom.corpus import build_corpus
from layergeom.extraction.fingerprint import sequences_digest
from layergeom.extraction.forward import HiddenStates
from layergeom.extraction.images import PatchTokenizer, image_sequences
from layergeom.extraction.models import load_model
from layergeom.extraction.sequences import build_sequences, token_table
from layergeom.extraction.sources import resolve_source
from layergeom.training import train as lgtrain

DIGITS = {"source": "digits", "sequences": {"mode": "images"}}
RUN = {
    "corpus": "digits",
    "architecture": "vit",
    "patch_size": 2,
    "n_layer": 2,
    "n_embd": 32,
    "n_head": 2,
    "steps": 4,
    "batch_size": 16,
    "learning_rate": 3e-3,
    "warmup_steps": 1,
    "min_lr_ratio": 0.1,
    "weight_decay": 0.01,
    "grad_clip": 1.0,
    "dropout": 0.0,
    "eval_fraction": 0.1,
    "eval_batches": 1,
    "log_checkpoints": True,
    "checkpoint_every": None,
    "seed": 0,
    "device": "cpu",
    "vocab_size": 4096,
}


@pytest.fixture(scope="module")
def digits():
    documents, sentences = build_corpus(DIGITS)
    return documents, sentences


def test_digits_corpus_holds_every_image_exactly(digits):
    from sklearn.datasets import load_digits

    documents, sentences = digits
    reference = load_digits()
    assert documents.height == 1797 and sentences.height == 0
    assert documents["topic"].to_list() == [str(t) for t in reference.target]
    pixels = np.asarray([row.split() for row in documents["text"]], dtype=np.float64)
    np.testing.assert_array_equal(pixels * 16, reference.data)
    assert (documents["n_words"] == 64).all()


def test_patch_tokens_code_grey_levels_row_by_row():
    tok = PatchTokenizer(4, 2, 1)
    image = np.zeros((1, 1, 4, 4), np.float32)
    image[0, 0, 0, 0], image[0, 0, 1, 1] = 1.0, 0.5  # top-left patch: levels 3, 0, 0, 2
    image[0, 0, 3, 3] = 0.3  # bottom-right patch: its last pixel at level 1
    ids = tok.ids(image)
    assert ids.tolist() == [[0, 1 + 3 * 64 + 2, 1, 1, 1 + 1]]
    assert tok.convert_ids_to_tokens(ids[0].tolist()) == ["[CLS]", "p3002", "p0000", "p0000", "p0001"]
    assert len(tok) == 257 and tok.n_patches == 4
    with pytest.raises(ValueError, match="document 0 has 3 pixel values, the model takes 16"):
        tok.pixels(["0 1 0"], "corpus x")


@pytest.fixture(scope="module")
def vit(digits, tmp_path_factory):
    torch.set_num_threads(1)
    data = lgtrain.prepare_data(None, digits[0].head(200), RUN)
    out = tmp_path_factory.mktemp("vit") / "checkpoints"
    table = lgtrain.train(RUN, None, data, out, "cpu")
    return data, out, table


def test_vit_trains_and_its_checkpoints_load_as_base_models(vit):
    data, out, table = vit
    assert data.train.shape[1:] == (1, 8, 8) and data.row_tokens == 17
    assert sorted(p.name for p in out.iterdir()) == ["step_0", "step_1", "step_2", "step_4"]
    assert table["tokens"][-1] == 4 * 16 * 17 and np.isfinite(table["loss"].drop_nulls().to_numpy()).all()
    loaded = load_model(resolve_source(str(out / "step_4")), device="cpu")  # a weight mismatch would raise
    assert isinstance(loaded.tokenizer, PatchTokenizer) and loaded.kind == "vision"
    assert loaded.n_layers == 2 and loaded.d_model == 32


def test_extraction_reads_pixels_and_keeps_every_patch(digits, vit):
    from transformers import ViTModel

    _, out, _ = vit
    documents = digits[0].head(10)
    loaded = load_model(resolve_source(str(out / "step_4")), device="cpu")
    seqs = build_sequences(loaded, DIGITS, documents, pl.DataFrame(), 512)
    assert seqs.lengths().tolist() == [17] * 10 and all(s[0] and not s[1:].any() for s in seqs.special)
    rows = np.arange(10)
    states = HiddenStates(loaded)(seqs, rows)
    model = ViTModel.from_pretrained(out / "step_4", add_pooling_layer=False).eval()
    with torch.inference_mode():
        hidden = model(pixel_values=torch.as_tensor(seqs.pixels), output_hidden_states=True).hidden_states
    for layer, expected in enumerate(hidden):
        torch.testing.assert_close(states[layer], expected.reshape(-1, 32), rtol=0, atol=0)
    table = token_table(seqs, rows, loaded.tokenizer)
    assert table["token"][0] == "[CLS]" and table["position"].max() == 16 and table["topic"][0] == "0"
    with pytest.raises(ValueError, match="sequences.mode 'sentences' but the model is a vision model"):
        build_sequences(loaded, {"sequences": {"mode": "sentences"}}, documents, pl.DataFrame(), 512)


def test_a_changed_pixel_changes_the_fingerprint_even_at_the_same_grey_level(digits):
    documents = digits[0].head(3)
    tok = PatchTokenizer(8, 2, 1)
    seqs = image_sequences(tok, documents, "digits")
    brighter = documents.with_columns(pl.col("text").str.replace(r"^0 ", "0.0625 "))  # first pixel: 0 -> 1/16
    changed = image_sequences(tok, brighter, "digits")
    assert all((a == b).all() for a, b in zip(seqs.ids, changed.ids))  # same grey levels
    assert sequences_digest(seqs) != sequences_digest(changed)


def test_an_image_corpus_without_training_images_is_refused(digits):
    with pytest.raises(ValueError, match="training corpus 'digits' has no image left to train on"):
        lgtrain.prepare_data(None, digits[0].head(0), RUN)


def test_image_sequences_name_a_document_of_the_wrong_size(digits):
    documents = digits[0].head(3).with_columns(pl.col("text").str.slice(0, 7))
    with pytest.raises(ValueError, match="corpus 'digits': document 0 has"):
        image_sequences(PatchTokenizer(8, 2, 1), documents, "corpus 'digits'")


def config_with(**extra) -> dict:
    config = {
        "corpora": {"text": {"source": "bbc"}, "digits": DIGITS},
        "models": {
            "minilm": {"source": "minilm"},
            "vit": {"checkpoints": {"train": "vitdigits", "steps": [0, 4]}},
        },
        "training": {"runs": {"vitdigits": {"corpus": "digits", "architecture": "vit", "steps": 4}}},
    }
    for key, value in extra.items():
        config[key] = {**config[key], **value}
    validate(config, "workflow/schemas/config.schema.yaml", set_default=True)
    return config


def test_models_run_on_the_corpora_they_can_read(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
    config = config_with()
    expanded = {**config, "models": lgconfig.expand_checkpoints(config)}
    assert lgconfig.model_corpora(expanded, "minilm") == ["text"]
    assert lgconfig.model_corpora(expanded, "vit.step_4") == ["digits"]
    with pytest.raises(lgconfig.ConfigError, match="models.minilm.corpora: a language model cannot read .*digits"):
        lgconfig.check(config_with(models={"minilm": {"source": "minilm", "corpora": ["digits"]}}))
    with pytest.raises(lgconfig.ConfigError, match="training.runs.vitdigits.corpus: a vit run trains on an image"):
        lgconfig.check(config_with(training={"runs": {"vitdigits": {"corpus": "text", "architecture": "vit"}}}))
    with pytest.raises(lgconfig.ConfigError, match="corpora.bad.sequences.mode: source 'digits'"):
        lgconfig.check(config_with(corpora={"bad": {"source": "digits"}}))
