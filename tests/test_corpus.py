"""Corpus stage: sources, sentence splitting, filtering and deterministic sampling."""

import polars as pl
import pytest

from layergeom.corpus import CorpusError, build_corpus, read_documents, split_sentences

BASE = {
    "min_words": 3,
    "max_words": 64,
    "sample": {"n_sentences": None, "fraction": None, "seed": 0},
    "text_column": "text",
    "topic_column": None,
    "topic": None,
    "max_documents": None,
}


def entry(**kw):
    out = {**BASE, **kw}
    out["sample"] = {**BASE["sample"], **kw.get("sample", {})}
    return out


def test_text_folder_topics_and_empty_documents(text_corpus, caplog):
    docs = read_documents(entry(source="text", path=str(text_corpus)))
    assert docs.height == 6  # the empty file is skipped
    assert set(docs["topic"]) == {"sport", "tech"}
    assert "skipped 1 empty documents" in caplog.text
    assert docs["doc_id"].to_list() == list(range(6))


def test_sampling_is_deterministic_and_seeded(text_corpus):
    a = build_corpus(entry(source="text", path=str(text_corpus), sample={"n_sentences": 10, "seed": 1}))[1]
    b = build_corpus(entry(source="text", path=str(text_corpus), sample={"n_sentences": 10, "seed": 1}))[1]
    c = build_corpus(entry(source="text", path=str(text_corpus), sample={"n_sentences": 10, "seed": 2}))[1]
    assert a.equals(b)
    assert not a.equals(c)
    assert a.height == 10 and a.columns == ["doc_id", "topic", "sent_id", "text", "n_words"]
    frac = build_corpus(entry(source="text", path=str(text_corpus), sample={"fraction": 0.5}))[1]
    full = build_corpus(entry(source="text", path=str(text_corpus)))[1]
    assert frac.height == round(full.height / 2)


def test_word_filter_and_too_few_sentences(text_corpus):
    sents = build_corpus(entry(source="text", path=str(text_corpus), min_words=5, max_words=12))[1]
    assert sents["n_words"].min() >= 5 and sents["n_words"].max() < 12
    with pytest.raises(CorpusError, match="only .* have"):
        build_corpus(entry(source="text", path=str(text_corpus), sample={"n_sentences": 10_000}))


def test_jsonl_and_parquet_columns(tmp_path):
    frame = pl.DataFrame({"body": ["One short sentence here. Another one follows it.", ""], "label": ["a", "b"]})
    frame.write_ndjson(tmp_path / "d.jsonl")
    frame.write_parquet(tmp_path / "d.parquet")
    for source, name in (("jsonl", "d.jsonl"), ("parquet", "d.parquet")):
        docs, sents = build_corpus(
            entry(source=source, path=str(tmp_path / name), text_column="body", topic_column="label")
        )
        assert docs.height == 1 and docs["topic"].to_list() == ["a"]
        assert sents["text"].to_list() == ["One short sentence here.", "Another one follows it."]
    with pytest.raises(CorpusError, match="no column 'text'"):
        read_documents(entry(source="jsonl", path=str(tmp_path / "d.jsonl")))


def test_sentence_splitter_keeps_abbreviations():
    assert split_sentences("Mr. Smith went to Washington. He arrived at 5 p.m. on Monday.\nNew paragraph") == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. on Monday.",
        "New paragraph",
    ]


def test_bbc_corpus_has_five_topics():
    docs = read_documents(entry(source="bbc"))
    assert docs.height == 2225
    assert docs["topic"].n_unique() == 5


def test_hf_source_without_datasets_says_so(monkeypatch):
    import importlib.util

    from layergeom import corpus

    real = importlib.util.find_spec
    monkeypatch.setattr(corpus.importlib.util, "find_spec", lambda name: None if name == "datasets" else real(name))
    with pytest.raises(CorpusError, match="needs the 'datasets' package"):
        read_documents(entry(source="hf", hf={"name": "bookcorpus", "split": "train"}))


def test_words_are_counted_in_scripts_without_spaces():
    from layergeom.corpus import word_count

    text = pl.DataFrame({"t": ["我们今天去公园散步。", "Hello, world — it's me.", "東京は日本の首都です", ""]})
    assert text.select(word_count(pl.col("t")))["n_words"].to_list() == [10, 5, 10, 0]


def test_a_filter_that_drops_every_sentence_is_named(tmp_path):
    from layergeom.corpus import CorpusError, sample_sentences

    sentences = pl.DataFrame({"text": ["a b", "c d"], "n_words": [2, 2]})
    with pytest.raises(CorpusError, match=r"every sentence is dropped: 2 of 2 by min_words \(3\)"):
        sample_sentences(sentences, 3, 100, None, None, 0)


CHINESE = "我天公学生中文北京上海城社会史新政国家世人民的有和大小山水火木金土日月年心手口目"


@pytest.mark.slow
def test_a_chinese_corpus_runs_on_minilm_and_keeps_its_tokens(tmp_path):
    import random

    import yaml
    from runs import snakemake

    from layergeom.io.store import read_tokens

    rng = random.Random(0)
    sentences = ["".join(rng.choice(CHINESE) for _ in range(rng.randint(6, 14))) + "。" for _ in range(240)]
    (tmp_path / "zh").mkdir()
    for i in range(0, 240, 8):
        (tmp_path / "zh" / f"{i:03d}.txt").write_text("".join(sentences[i : i + 8]), encoding="utf-8")
    config = {
        "corpora": {"zh": {"source": "text", "path": str(tmp_path / "zh"), "min_words": 3}},
        "models": {"minilm": {"source": "minilm"}},
        "drift": {"enabled": False},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "results/hidden/minilm/zh/tokens.parquet", "results/summary/minilm/zh/layers.parquet")
    assert done.returncode == 0, done.stderr[-3000:]
    tokens = read_tokens(tmp_path / "results" / "hidden" / "minilm" / "zh" / "tokens.parquet")
    assert tokens["seq_id"].n_unique() == 240
    assert (tokens["token"] == "[UNK]").sum() == 0 and tokens.height > 240 * 8
