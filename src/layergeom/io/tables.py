"""Cross-model tables: every model's per-layer table of one analysis on one corpus, stacked, as CSV/Markdown/HTML."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import polars as pl

from layergeom.io.atomic import atomic_output

KEYS = ("model", "corpus", "layer", "layer_name", "relative_depth")


def flatten_lists(table: pl.DataFrame) -> pl.DataFrame:
    """Spread every list column ``x`` into columns ``x_1``, ``x_2``, ... (missing entries null)."""
    for name, dtype in table.schema.items():
        if isinstance(dtype, (pl.List, pl.Array)):
            width = int(table[name].list.len().max() or 0)
            parts = [table[name].list.get(i, null_on_oob=True).alias(f"{name}_{i + 1}") for i in range(width)]
            table = table.with_columns(parts).drop(name)
        elif dtype.is_nested():
            raise ValueError(f"column '{name}' of type {dtype} cannot go into a flat table")
    return table


def stack(paths: Sequence[str | os.PathLike], models: Sequence[str], corpus: str) -> pl.DataFrame:
    """One row per (model, layer): model, corpus, layer, layer_name, relative_depth, then the table's own columns."""
    if len(paths) != len(models):
        raise ValueError(f"{len(paths)} tables for {len(models)} models")
    frames = []
    for model, path in zip(models, paths):
        table = pl.read_parquet(path)
        missing = {"layer", "relative_depth"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: a layer table needs the columns {sorted(missing)} (see io.store.layer_axis)")
        table = flatten_lists(table).with_columns(model=pl.lit(model), corpus=pl.lit(corpus))
        keys = [k for k in KEYS if k in table.columns]
        frames.append(table.select(*keys, pl.exclude(keys)))
    return pl.concat(frames, how="diagonal_relaxed")


def _cells(frame: pl.DataFrame, digits: int) -> list[list[str]]:
    """Every value as text; floats with ``digits`` significant digits, nulls empty."""
    cols = []
    for name, dtype in frame.schema.items():
        values = frame[name].to_list()
        if dtype.is_float():
            cols.append(["" if v is None else f"{v:.{digits}g}" for v in values])
        else:
            cols.append(["" if v is None else str(v) for v in values])
    return [list(row) for row in zip(*cols)]


def to_markdown(frame: pl.DataFrame, digits: int = 5) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""

    def esc(text: str) -> str:
        return text.replace("|", r"\|")

    align = ["---:" if dtype.is_numeric() else ":---" for dtype in frame.schema.values()]
    lines = ["| " + " | ".join(map(esc, frame.columns)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in _cells(frame, digits)]
    return "\n".join(lines) + "\n"


def to_html(frame: pl.DataFrame, title: str, note: str = "", digits: int = 5) -> str:
    """A standalone HTML page with the table (numbers right-aligned), for the Snakemake report."""
    numeric = [dtype.is_numeric() for dtype in frame.schema.values()]

    def row(cells: list[str], tag: str) -> str:
        return (
            "<tr>"
            + "".join(
                f"<{tag}{' class=num' if num and tag == 'td' else ''}>{html.escape(c)}</{tag}>"
                for c, num in zip(cells, numeric)
            )
            + "</tr>"
        )

    body = "\n".join(row(cells, "td") for cells in _cells(frame, digits))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:2px 6px}th{background:#eee;position:sticky;top:0}"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}</style></head><body>\n"
        f"<h3>{html.escape(title)}</h3><p>{html.escape(note)}</p>\n<table>\n"
        f"{row(list(frame.columns), 'th')}\n{body}\n</table></body></html>\n"
    )


def write_tables(frame: pl.DataFrame, csv: str, markdown: str, page: str, title: str, note: str = "") -> None:
    """Write the table as CSV (full precision), Markdown and HTML, each atomically."""
    with atomic_output(csv) as tmp:
        frame.write_csv(tmp)
    with atomic_output(markdown) as tmp:
        tmp.write_text(f"## {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(frame))
    with atomic_output(page) as tmp:
        tmp.write_text(to_html(frame, title, note))


def write_cross_model(
    paths: Sequence[str | os.PathLike],
    models: Sequence[str],
    analysis: str,
    corpus: str,
    what: str,
    tokens: str | None,
    out: dict,
) -> pl.DataFrame:
    """Stack every model's layer table of one analysis on one corpus and write it as CSV, Markdown and HTML."""
    frame = stack(paths, models, corpus)
    note = f"{what}. Tokens: {tokens}." if tokens else f"{what}."
    write_tables(frame, out["csv"], out["md"], out["html"], f"{analysis} on {corpus}: {', '.join(models)}", note)
    return frame
