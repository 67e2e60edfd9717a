"""[AS] claims: over training the mean query and key grow and attention sharpens; in the drift experiment
attention entropy falls as the shared drift grows."""

from __future__ import annotations

import math

import polars as pl

from layergeom.findings.verdicts import (
    TREND,
    Claim,
    Finding,
    Measure,
    at_least,
    at_most,
    finding,
    not_applicable,
    spearman,
)

DRIFT_DROP = 0.25  # the entropy at the largest drift at least this fraction below N = 0

AS_QK_NORMS = Claim(
    "as_qk_norms",
    "AS",
    "over training the mean query and the mean key move away from the origin",
    "mean query and key norms grow during training",
    f"holds if the Spearman correlations with step of mean_q_norm and of mean_k_norm (each averaged over "
    f"layers and heads) are both >= {TREND}; not applicable with fewer than 3 checkpoints",
    "paraphrase of the body (training dynamics of self-attention), not a quote: over training the mean query "
    "and the mean key drift away from the origin in a common direction",
)
AS_SHARPENING = Claim(
    "as_sharpening",
    "AS",
    "over training attention becomes sharper",
    "attention entropy falls during training",
    f"holds if the Spearman correlation with step of mean_entropy / uniform_entropy (averaged over layers "
    f"and heads) is <= -{TREND}; not applicable with fewer than 3 checkpoints",
    "paraphrase of the body (training dynamics of self-attention), not a quote: the drift of queries and keys "
    "makes attention sharper and the representations more anisotropic",
)
AS_DRIFT = Claim(
    "as_drift",
    "AS",
    "drift experiment: a drift shared by the inputs of an untrained block sharpens its attention",
    "a larger shared drift makes attention sharper (lower entropy)",
    f"on the block whose attention reads the drift (the first; after the norm of a pre-norm block): holds if the "
    f"mean attention entropy (over repeats) at the largest N is at least {DRIFT_DROP:.0%} below its value at N = 0",
    "paraphrase of the body (controlled experiment on untrained blocks), not a quote: a drift shared by the "
    "inputs of an untrained block makes its attention sharper as the drift grows",
)
CLAIMS = (AS_QK_NORMS, AS_SHARPENING, AS_DRIFT)


def per_step(steps: list[int], heads: list[pl.DataFrame]) -> pl.DataFrame:
    """Mean query norm, key norm and relative entropy over layers and heads at every step."""
    return pl.DataFrame(
        [
            {
                "step": step,
                "q": table["mean_q_norm"].mean(),
                "k": table["mean_k_norm"].mean(),
                "entropy": (table["mean_entropy"] / table["uniform_entropy"]).mean(),
            }
            for step, table in zip(steps, heads)
        ]
    ).sort("step")


def trend(series: pl.DataFrame, column: str) -> tuple[str, float]:
    """First and last value of ``column`` with its Spearman correlation with step."""
    rho = spearman(series["step"].to_numpy(), series[column].to_numpy())
    return f"{series[column][0]:.3g} -> {series[column][-1]:.3g} (ρ = {rho:.2f})", rho


def training_findings(steps: list[int], heads: list[pl.DataFrame]) -> list[tuple[Claim, Measure]]:
    """The two training claims on one family's checkpoints (both norms rising: judged on the smaller ρ)."""
    if len(steps) < 3 or any(table.height == 0 for table in heads):
        note = not_applicable(f"{len(steps)} checkpoint(s)" if len(steps) < 3 else "no attention block stored")
        return [(AS_QK_NORMS, note), (AS_SHARPENING, note)]
    series = per_step(steps, heads)
    (q_text, q_rho), (k_text, k_rho), (e_text, e_rho) = (trend(series, c) for c in ("q", "k", "entropy"))
    finite = [rho for rho in (q_rho, k_rho) if math.isfinite(rho)]
    norms = f"query {q_text}; key {k_text}"
    fails = any(rho < TREND for rho in finite)
    both = at_least(norms, min(finite), TREND) if fails or len(finite) == 2 else not_applicable(norms)
    return [
        (AS_QK_NORMS, both),
        (AS_SHARPENING, at_most(f"entropy / uniform {e_text}", e_rho, -TREND)),
    ]


def drift_findings(drift: pl.DataFrame) -> list[tuple[str, Measure]]:
    """The drift claim per block type: the first block's mean entropy at the largest N against N = 0."""
    rows = []
    first = drift.filter(pl.col("block") == 1)
    for (block_type,), table in first.group_by("block_type", maintain_order=True):
        series = table.group_by("drift").agg(pl.col("mean_entropy").mean()).sort("drift")
        entropy, grid = series["mean_entropy"], series["drift"]
        drop = 1 - entropy[-1] / entropy[0] if entropy[0] > 0 else float("nan")
        measured = (
            f"block 1: {entropy[0]:.3f} at N = {grid[0]:g} -> {entropy[-1]:.3f} at N = {grid[-1]:g} ({drop:.0%} lower)"
        )
        rows.append((block_type, at_least(measured, drop, DRIFT_DROP)))
    return rows


def findings(
    training: dict[tuple[str, str], list[tuple[int, pl.DataFrame]]], drift: pl.DataFrame | None, selection: str
) -> list[Finding]:
    """The training claims on every (family, corpus), the drift claim on every block type."""
    rows = []
    for (family, corpus), checkpoints in training.items():
        for claim, measure in training_findings([s for s, _ in checkpoints], [t for _, t in checkpoints]):
            rows.append(finding(claim, family, corpus, selection, measure))
    if drift is not None:
        for block_type, measure in drift_findings(drift):
            rows.append(finding(AS_DRIFT, f"untrained {block_type} blocks", "synthetic", "every token", measure))
    return rows
