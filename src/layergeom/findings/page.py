"""The findings table from every claim module, written as CSV, Markdown and the report's landing page."""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl

from layergeom.findings.verdicts import Claim, Finding
from layergeom.io.atomic import atomic_output

COLUMNS = ("paper", "claim", "model", "corpus", "tokens", "measured", "reference", "verdict")
#: the numbers behind each verdict: the value judged, its threshold, the margin on the holding side (negative when
#: the claim fails), the layer it comes from, and whether the margin is within NEAR of the threshold's size
NUMBERS = {"value": pl.Float64, "threshold": pl.Float64, "margin": pl.Float64, "layer": pl.Int64}
NEAR = 0.1  # near the threshold: |margin| <= NEAR * max(|threshold|, 0.5)
INTRO = (
    "One row per (claim, model, corpus). Every verdict is computed from the workflow's tables by the rule "
    "of its claim below (holds / does not hold / not applicable); none is typed by hand. Depth claims use "
    "pretrained models and the last checkpoint of each training run; training claims use every checkpoint. "
    "Spearman ρ is the rank correlation. results/findings.csv also holds, per row, the value judged, its "
    "threshold, the margin on the holding side and the layer it comes from."
)


def frame(findings: Sequence[Finding], claims: Sequence[Claim]) -> pl.DataFrame:
    """The findings as a table, in the order of the claims."""
    order = {claim.key: i for i, claim in enumerate(claims)}
    rows = [
        {
            "paper": f.claim.paper,
            "claim": f.claim.key,
            "model": f.model,
            "corpus": f.corpus,
            "tokens": f.selection,
            "measured": f.measured,
            "reference": f.claim.reference,
            "verdict": f.verdict,
            "value": f.value,
            "threshold": f.threshold,
            "margin": f.margin,
            "layer": f.layer,
        }
        for f in sorted(findings, key=lambda f: order[f.claim.key])
    ]
    table = pl.DataFrame(rows, schema={**dict.fromkeys(COLUMNS, pl.String), **NUMBERS})
    size = pl.max_horizontal(pl.col("threshold").abs(), pl.lit(0.5))
    return table.with_columns(near_threshold=(pl.col("margin").abs() <= NEAR * size).fill_null(False))


def tally(table: pl.DataFrame) -> str:
    """How many findings hold, do not hold, are not applicable, and sit near their threshold."""
    counts = dict(table.group_by("verdict").len().iter_rows())
    parts = [f"{counts.get(v, 0)} {v}" for v in ("holds", "does not hold", "not applicable")]
    return f"{', '.join(parts)}; {int(table['near_threshold'].sum())} near their threshold (marked ≈)"


def shown(table: pl.DataFrame) -> pl.DataFrame:
    """The text columns of the findings for the pages, a verdict near its threshold marked with ≈."""
    mark = pl.when(pl.col("near_threshold")).then(pl.lit(" ≈")).otherwise(pl.lit(""))
    return table.select(*COLUMNS[:-1], verdict=pl.col("verdict") + mark)


def claims_frame(claims: Sequence[Claim]) -> pl.DataFrame:
    """Every claim with its text and rule."""
    return pl.DataFrame([{"claim": c.key, "paper": c.paper, "text": c.text, "rule": c.rule} for c in claims])


def markdown(table: pl.DataFrame) -> str:
    """A GitHub Markdown table of string columns."""
    cells = [[str(v).replace("|", "\\|") for v in row] for row in table.iter_rows()]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * table.width]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def rst_table(table: pl.DataFrame) -> str:
    """A reStructuredText list-table of string columns."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [table.columns, *table.iter_rows()]:
        lines += [f"   * - {row[0]}"] + [f"     - {value}" for value in row[1:]]
    return "\n".join(lines) + "\n"


def markdown_page(table: pl.DataFrame, claims: Sequence[Claim]) -> str:
    """results/findings.md: the introduction, the rules and the findings."""
    rules = markdown(claims_frame(claims))
    return f"# Findings\n\n{INTRO}\n\n{tally(table)}.\n\n## Rules\n\n{rules}\n## Findings\n\n{markdown(shown(table))}"


def landing_page(intro: str, table: pl.DataFrame, claims: Sequence[Claim]) -> str:
    """The report's landing page: the workflow description, then the findings and their rules."""
    return (
        f"{intro.rstrip()}\n\nFindings\n--------\n\n{tally(table)}.\n\n{INTRO}\n\n{rst_table(shown(table))}\n"
        f"Rules\n-----\n\n{rst_table(claims_frame(claims))}"
    )


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_pages(
    findings: Sequence[Finding], claims: Sequence[Claim], intro: str, out: dict[str, str | os.PathLike]
) -> pl.DataFrame:
    """Write ``csv``, ``md`` and the report landing page ``rst``; return the table."""
    table = frame(findings, claims)
    with atomic_output(out["csv"]) as tmp:
        table.write_csv(tmp)
    write_text(markdown_page(table, claims), out["md"])
    write_text(landing_page(intro, table, claims), out["rst"])
    return table
