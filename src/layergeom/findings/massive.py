"""[MA] claim: a few hidden-state entries of an LLM are massive, over 100 and about 1000 times the median |x|."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.findings.verdicts import Claim, Finding, Measure, at_least, finding, not_applicable

MASSIVE_ABS = 100.0
MASSIVE_RATIO = 1000.0
CRITERION = f"max_abs > {MASSIVE_ABS:g} and ratio = max_abs / median_abs >= {MASSIVE_RATIO:g}"
MA_MASSIVE = Claim(
    "ma_massive",
    "MA",
    "decoders: a few hidden-state entries are massive, far above the median magnitude",
    "a few entries over 100 and about 1000 times the median |x|, some up to 100,000 times larger",
    f"decoders only, layers before any final norm: holds if some layer is massive ({CRITERION}); otherwise the "
    "layer nearest to it is reported; encoders are not applicable (the paper studies LLMs and ViTs)",
    '"very few activations exhibit significantly larger values than others (e.g., 100,000 times larger). We call '
    'them massive activations." (abstract)',
)
CLAIMS = (MA_MASSIVE,)


def is_massive(max_abs, ratio):
    """The criterion on a value (or array) and its ratio to the median |x|."""
    return np.logical_and(np.asarray(max_abs) > MASSIVE_ABS, np.asarray(ratio) >= MASSIVE_RATIO)


def describe(row: dict) -> str:
    """One layer's largest entry, median and ratio in words."""
    return (
        f"layer {row['layer']}: max |x| {row['max_abs']:.4g} (dim {row['max_dim']}, position {row['max_position']}), "
        f"median |x| {row['median_abs']:.3g}, ratio {row['ratio']:.4g}"
    )


def massive_layer(table: pl.DataFrame) -> Measure:
    """The layer of largest ratio among those over MASSIVE_ABS, judged on the ratio; with none over it, the
    largest max_abs, judged on it."""
    if table["kind"][0] != "decoder":
        return not_applicable(f"{table['kind'][0]} model: [MA] studies LLMs (decoders)")
    kept = table.filter(~pl.col("after_final_norm") & pl.col("ratio").is_finite())
    if kept.height == 0:
        return not_applicable("no stored layer before the final norm")
    above = kept.filter(pl.col("max_abs") > MASSIVE_ABS)
    if above.height:
        row = above.sort(["ratio", "layer"], descending=[True, False]).row(0, named=True)
        return at_least(describe(row), row["ratio"], MASSIVE_RATIO, row["layer"])
    row = kept.sort(["max_abs", "layer"], descending=[True, False]).row(0, named=True)
    margin = min(row["max_abs"] - MASSIVE_ABS, -np.finfo(float).tiny)  # not above MASSIVE_ABS: never holds
    return Measure(
        f"{describe(row)}: none over {MASSIVE_ABS:g}", False, row["max_abs"], MASSIVE_ABS, margin, row["layer"]
    )


def findings(tables: dict[tuple[str, str], pl.DataFrame], selection: str) -> list[Finding]:
    """The claim on every (model, corpus) layer table."""
    return [finding(MA_MASSIVE, model, corpus, selection, massive_layer(t)) for (model, corpus), t in tables.items()]
