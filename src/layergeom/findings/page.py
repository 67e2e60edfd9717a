"""The findings table from every claim module, written as CSV, Markdown and the report's landing page."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import polars as pl

from layergeom.findings.verdicts import FAILS, HOLDS, NOT_APPLICABLE, Claim, Finding
from layergeom.io.atomic import atomic_output

COLUMNS = ("paper", "claim", "model", "corpus", "tokens", "measured", "reference", "verdict")
#: the numbers behind each verdict: the value judged, its threshold, the margin on the holding side (negative when
#: the claim fails), the layer it comes from, and whether the margin is within NEAR of the threshold's size
NUMBERS = {"value": pl.Float64, "threshold": pl.Float64, "margin": pl.Float64, "layer": pl.Int64}
NEAR = 0.1  # near the threshold: |margin| <= NEAR * max(|threshold|, 0.5)
INTRO = (
    "Every verdict is computed from the workflow's tables by the rule of its claim (holds / does not hold / "
    "not applicable); none is typed by hand. Depth claims use pretrained models and the last checkpoint of each "
    "training run; training claims use every checkpoint. Spearman ρ is the rank correlation. "
    "results/findings.csv holds, per row, the value judged, its threshold, the margin on the holding side and the "
    "layer it comes from."
)
PAPERS = (
    "Papers: [NV] Yamagiwa & Shimodaira 2024, Norm of Mean Contextualized Embeddings Determines their Variance; "
    "[SL] Razzhigaev et al. 2024, The Shape of Learning: Anisotropy and Intrinsic Dimensions in Transformer-Based "
    "Models; [AS] Godey, de la Clergerie & Sagot 2024, Anisotropy Is Inherent to Self-Attention in Transformers; "
    "[PC] Song & Zhong 2024, Uncovering hidden geometry in Transformers via disentangling position and context; "
    "[RD] Timkey & van Schijndel 2021, All Bark and No Bite: Rogue Dimensions in Transformer Language Models "
    "Obscure Representational Quality; "
    "[MA] Sun, Chen, Kolter & Liu 2024, Massive Activations in Large Language Models; "
    "[TL] Razzhigaev et al. 2024, Your Transformer is Secretly Linear."
)
GUIDE = (
    "Which column answers which question: anisotropy as [AS] means it is mean_cos (the mean cosine between two "
    "tokens' states, their common direction included); as [SL] means it, sigma1_share (the largest eigenvalue's "
    "share of the covariance, the mean removed); mean_cos_centered is the cosine with the mean removed. They can "
    "peak at different layers. after_final_norm marks, per row, a layer taken after the model's final norm. "
    "docs/methods.md (the column dictionary) has the full guide."
)
#: the mark and the RST role (a CSS class of the landing page) of each verdict in the verdict matrix
MARKS = {HOLDS: ("✓", "holds"), FAILS: ("✗", "fails"), NOT_APPLICABLE: ("–", "na")}
#: the landing page's style: top-aligned (Snakemake's report centres its content vertically, which puts the top of
#: a long page out of reach), a wider text column, tables that scroll instead of overlapping the rule graph
STYLE = """.. raw:: html

   <style>
   div.h-screen.items-center { align-items: flex-start; justify-content: flex-start; }
   .prose.max-w-lg { max-width: 64rem; }
   .prose table { display: block; overflow-x: auto; }
   .prose .holds { background: #bbf7d0; } .prose .fails { background: #fecaca; } .prose .na { color: #6b7280; }
   .prose .holds, .prose .fails, .prose .na { padding: 0 0.4em; border-radius: 0.25em; }
   </style>

.. role:: holds
.. role:: fails
.. role:: na
"""
RST_SPECIAL = re.compile(r"([\\`*|_])")


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
    parts = [f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, NOT_APPLICABLE)]
    return f"{', '.join(parts)}; {int(table['near_threshold'].sum())} near their threshold (marked ≈)"


def shown(table: pl.DataFrame) -> pl.DataFrame:
    """The text columns of the findings for the pages, a verdict near its threshold marked with ≈."""
    mark = pl.when(pl.col("near_threshold")).then(pl.lit(" ≈")).otherwise(pl.lit(""))
    return table.select(*COLUMNS[:-1], verdict=pl.col("verdict") + mark)


def claims_frame(claims: Sequence[Claim], table: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every claim with the paper's statement it tests and its rule, and (given the findings) the token selections
    it was judged on."""
    frame_ = pl.DataFrame(
        [{"claim": c.key, "paper": c.paper, "the paper says": c.quote, "rule": c.rule} for c in claims]
    )
    if table is None:
        return frame_
    tokens = table.group_by("claim", maintain_order=True).agg(pl.col("tokens").unique(maintain_order=True))
    tokens = tokens.with_columns(pl.col("tokens").list.join("; "))
    return frame_.join(tokens, on="claim", how="left").with_columns(pl.col("tokens").fill_null("not run"))


def markdown(table: pl.DataFrame) -> str:
    """A GitHub Markdown table of string columns."""
    cells = [[str(v).replace("|", "\\|") for v in row] for row in table.iter_rows()]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * table.width]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def rst_text(text: str) -> str:
    """Plain text as reStructuredText inline text: the characters of markup escaped."""
    return RST_SPECIAL.sub(r"\\\1", text)


def rst_table(table: pl.DataFrame, escape: bool = True) -> str:
    """A reStructuredText list-table of string columns (cells escaped unless they hold markup)."""
    cell = rst_text if escape else str
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [table.columns, *table.iter_rows()]:
        lines += [f"   * - {cell(row[0])}"] + [f"     - {cell(value)}" for value in row[1:]]
    return "\n".join(lines) + "\n"


def matrix(table: pl.DataFrame) -> pl.DataFrame:
    """The verdicts as claims (and corpora) x models: a mark per finding, ≈ near its threshold, blank if not run."""
    symbol, role = (pl.col("verdict").replace_strict({v: m[i] for v, m in MARKS.items()}) for i in (0, 1))
    near = pl.when(pl.col("near_threshold")).then(pl.lit("≈")).otherwise(pl.lit(""))
    cells = table.with_columns(
        cell=pl.format(":{}:`{}{}`", role, symbol, near), claim=pl.format("{} ({})", "claim", "paper")
    )
    models = cells["model"].unique(maintain_order=True).to_list()
    wide = cells.pivot("model", index=["claim", "corpus"], values="cell", aggregate_function="first")
    return wide.select("claim", "corpus", *models).fill_null("")


def verdict_section(table: pl.DataFrame) -> str:
    """The verdict matrix with its legend."""
    legend = " ".join(f":{role}:`{symbol}` {verdict}" for verdict, (symbol, role) in MARKS.items())
    escaped = matrix(table).with_columns(pl.col("claim", "corpus").map_elements(rst_text, return_dtype=pl.String))
    return f"{legend}; ≈ near its threshold; blank: not run.\n\n{rst_table(escaped, escape=False)}"


def heading(title: str) -> str:
    """A section title of the landing page (one level: every section is top-level)."""
    return f"{title}\n{'=' * len(title)}\n\n"


def markdown_page(table: pl.DataFrame, claims: Sequence[Claim]) -> str:
    """results/findings.md: the introduction, the rules and the findings."""
    rules = markdown(claims_frame(claims))
    return (
        f"# Findings\n\n{INTRO}\n\n{PAPERS}\n\n{GUIDE}\n\n{tally(table)}.\n\n## Rules\n\n{rules}\n"
        f"## Findings\n\n{markdown(shown(table))}"
    )


def landing_page(intro: str, table: pl.DataFrame, claims: Sequence[Claim]) -> str:
    """The report's landing page: the verdicts at a glance, the workflow, the rules and the measured values."""
    measured = shown(table).select("claim", "model", "corpus", "measured", "reference", "verdict")
    return (
        f"{STYLE}\n{heading('Findings')}{tally(table)}.\n\n{verdict_section(table)}\n{rst_text(INTRO)}\n\n"
        f"{rst_text(PAPERS)}\n\n{rst_text(GUIDE)}\n\n"
        f"{heading('This run')}{intro.strip()}\n\n{heading('Rules')}{rst_table(claims_frame(claims, table))}\n"
        f"{heading('Measured values')}{rst_table(measured)}"
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
