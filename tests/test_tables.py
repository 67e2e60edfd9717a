"""Cross-model tables: stacking per-model layer tables with relative depth, and their text forms."""

import polars as pl
import pytest

from layergeom.io.tables import stack, to_html, to_markdown, write_tables


@pytest.fixture
def two_tables(tmp_path):
    a = pl.DataFrame(
        {
            "layer": [0, 1, 2],
            "layer_name": ["embeddings", "block_1", "block_2"],
            "relative_depth": [0.0, 0.5, 1.0],
            "value": [1.0, 0.5, 0.25],
            "model": ["stale"] * 3,
        }
    )
    b = pl.DataFrame(
        {
            "relative_depth": [0.0, 0.125, 0.25, 0.375, 0.5],
            "layer": [0, 1, 2, 3, 4],  # a layer subset
            "layer_name": ["embeddings"] + [f"block_{i}" for i in range(1, 5)],
            "value": [3.0, None, 1.0, 2.0, 4.0],
            "extra": [1, 2, 3, 4, 5],
        }
    )
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    a.write_parquet(paths[0])
    b.write_parquet(paths[1])
    return paths


def test_stack_adds_model_and_corpus_and_keeps_each_tables_relative_depth(two_tables):
    frame = stack(two_tables, ["enc", "dec"], "news")
    assert frame.columns[:5] == ["model", "corpus", "layer", "layer_name", "relative_depth"]
    assert frame["model"].to_list() == ["enc"] * 3 + ["dec"] * 5  # a stale model column is replaced
    assert set(frame["corpus"]) == {"news"}
    assert frame["relative_depth"].to_list() == [0.0, 0.5, 1.0, 0.0, 0.125, 0.25, 0.375, 0.5]
    assert frame["extra"].to_list() == [None] * 3 + [1, 2, 3, 4, 5]
    assert frame["value"].to_list() == [1.0, 0.5, 0.25, 3.0, None, 1.0, 2.0, 4.0]


def test_stack_refuses_bad_tables_and_flattens_lists(tmp_path, two_tables):
    with pytest.raises(ValueError, match="2 tables for 1 models"):
        stack(two_tables, ["enc"], "news")
    pl.DataFrame({"layer": [0]}).write_parquet(tmp_path / "nodepth.parquet")
    with pytest.raises(ValueError, match="relative_depth"):
        stack([tmp_path / "nodepth.parquet"], ["m"], "news")
    pl.DataFrame({"layer": [0, 1], "relative_depth": [0.0, 1.0], "vec": [[1.0, 2.0], [3.0]]}).write_parquet(
        tmp_path / "nested.parquet"
    )
    flat = stack([tmp_path / "nested.parquet"], ["m"], "news")
    assert flat["vec_1"].to_list() == [1.0, 3.0] and flat["vec_2"].to_list() == [2.0, None]
    assert "vec" not in flat.columns


def test_markdown_and_html_forms():
    frame = pl.DataFrame({"model": ["a|b", "<c>"], "layer": [0, 1], "x": [1 / 3, None]})
    md = to_markdown(frame).splitlines()
    assert md[0] == "| model | layer | x |"
    assert md[1] == "| :--- | ---: | ---: |"
    assert md[2] == r"| a\|b | 0 | 0.33333 |"
    assert md[3] == "| <c> | 1 |  |"
    page = to_html(frame, "t & u", "note")
    assert page.count("<tr>") == 3 and "&lt;c&gt;" in page and "t &amp; u" in page
    assert "<td class=num>0.33333</td>" in page


def test_write_tables_roundtrips_csv_at_full_precision(tmp_path, two_tables):
    frame = stack(two_tables, ["enc", "dec"], "news")
    out = [tmp_path / "t" / name for name in ("x.csv", "x.md", "x.html")]
    write_tables(frame, *out, title="summary on news", note="uncentered")
    back = pl.read_csv(out[0], schema=frame.schema)
    assert back.equals(frame)
    assert out[1].read_text().startswith("## summary on news\n\nuncentered\n\n| model |")
    assert "<h3>summary on news</h3>" in out[2].read_text()
    assert not list((tmp_path / "t").glob(".*"))  # no temporary files left
