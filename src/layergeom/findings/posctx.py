"""[PC] claims across layers: low-rank, smooth position vectors, topic-clustered contexts, and position and
context nearly orthogonal."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.findings.verdicts import Claim, Finding, Measure, at_least, at_most, finding, not_applicable

STABLE_RANK = 3.0
TOPIC_RATIO = 2.0  # [PC] reports 0.44 against 0.10 (4.4x) for GPT-2
INCOHERENCE_RATIO = 2.0
SMOOTHNESS = 0.9
WHERE = "median over the layers before any final norm ([PC] states its findings across layers)"
PC_RANK = Claim(
    "pc_rank",
    "PC",
    "position vectors have a low stable rank across layers",
    "pos_stable_rank about 1.9 in GPT-2's middle layers (OpenWebText)",
    f"holds if the {WHERE} of pos_stable_rank is <= {STABLE_RANK:g}",
    '"(pos_t)_t forms a low-dimensional, continuous, and often spiral shape across layers" (abstract)',
)
PC_TOPICS = Claim(
    "pc_topics",
    "PC",
    "context vectors are more alike within a topic than across topics",
    "mean |cos| about 0.44 within a topic against 0.10 across (GPT-2)",
    f"holds if the {WHERE} of ctx_within_cos is >= {TOPIC_RATIO:g} times that of ctx_across_cos; "
    "not applicable without topics",
    '"(ctx_c)_c shows clear cluster structure that falls into context topics" (abstract)',
)
PC_INCOHERENCE = Claim(
    "pc_incoherence",
    "PC",
    "position and context vectors are nearly orthogonal, as random vectors",
    "|cos(pos, ctx)| close to the random baseline",
    f"holds if the {WHERE} of incoherence_mean is <= {INCOHERENCE_RATIO:g} times random_baseline_mean",
    '"(pos_t)_t and (ctx_c)_c are mutually nearly orthogonal" (abstract)',
)
PC_SMOOTH = Claim(
    "pc_smooth",
    "PC",
    "position vectors trace a smooth curve",
    "the cosine Gram of positions is concentrated at low frequencies",
    f"holds if the {WHERE} of smoothness_lowfreq is >= {SMOOTHNESS:g}",
    '"We argue that smoothness is pervasive and beneficial to transformers trained on languages" (abstract)',
)
CLAIMS = (PC_RANK, PC_TOPICS, PC_INCOHERENCE, PC_SMOOTH)


def medians(table: pl.DataFrame, *columns: str) -> list[float]:
    """Median of each column over the layers before any final norm (NaN when none is finite)."""
    rows = table.filter(~pl.col("after_final_norm"))
    values = [rows[c].drop_nans().drop_nulls() for c in columns]
    return [float(v.median()) if len(v) else np.nan for v in values]


def judge(table: pl.DataFrame) -> list[tuple[Claim, Measure]]:
    """The four claims on one (model, corpus) layer table; the topic and incoherence claims judge ratios."""
    rank, smooth = medians(table, "pos_stable_rank", "smoothness_lowfreq")
    inside, across = medians(table, "ctx_within_cos", "ctx_across_cos")
    coherence, baseline = medians(table, "incoherence_mean", "random_baseline_mean")
    topics = np.isfinite(inside) and np.isfinite(across) and across > 0
    ratio = coherence / baseline if np.isfinite(coherence) and baseline > 0 else np.nan
    return [
        (PC_RANK, at_most(f"{rank:.2f}", rank, STABLE_RANK)),
        (
            PC_TOPICS,
            at_least(f"within {inside:.3f}, across {across:.3f}", inside / across, TOPIC_RATIO)
            if topics
            else not_applicable("no topics"),
        ),
        (PC_INCOHERENCE, at_most(f"{coherence:.3f} against random {baseline:.3f}", ratio, INCOHERENCE_RATIO)),
        (PC_SMOOTH, at_least(f"{smooth:.3f}", smooth, SMOOTHNESS)),
    ]


def findings(tables: dict[tuple[str, str], pl.DataFrame], selection: str) -> list[Finding]:
    """Every [PC] claim on every (model, corpus) layer table of the position/context analysis."""
    return [
        finding(claim, model, corpus, selection, measure)
        for (model, corpus), table in tables.items()
        for claim, measure in judge(table)
    ]
