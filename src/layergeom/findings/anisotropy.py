"""[SL] claims: the top singular share over depth (decoders peak in the middle, encoders flat) and the
intrinsic dimension over training (expansion, then compression)."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.findings.verdicts import (
    Claim,
    Finding,
    Measure,
    at_least,
    at_most,
    finding,
    not_applicable,
    within,
)

PEAK_DEPTH = (0.2, 0.8)
BELL_DROP = 0.2  # both ends of the bell at least this fraction below its peak
FLAT_RANGE = 0.1
CHANGE = 0.1
SL_DECODER_PEAK = Claim(
    "sl_decoder_peak",
    "SL",
    "decoders: the top singular share peaks in the middle of depth",
    "bell-shaped over depth in GPT-2, OPT, Pythia, Llama",
    f"decoders only, layers before any final norm: holds if the layer of largest sigma1_share has relative depth "
    f"in [{PEAK_DEPTH[0]}, {PEAK_DEPTH[1]}] and the first and last layers both lie at least {BELL_DROP:.0%} "
    "below that peak (a bell, not a plateau)",
    '"the anisotropy profile in transformer decoders exhibits a distinct bell-shaped curve, with the highest '
    'anisotropy concentrations in the middle layers" (abstract)',
)
SL_ENCODER_FLAT = Claim(
    "sl_encoder_flat",
    "SL",
    "encoders: the top singular share is flat over depth",
    "low and flat in BERT, RoBERTa",
    f"encoders only: holds if max - min of sigma1_share over the layers is <= {FLAT_RANGE}",
    '"This pattern diverges from the more uniformly distributed anisotropy observed in encoders." (abstract)',
)
SL_ID_TRAINING = Claim(
    "sl_id_training",
    "SL",
    "over training the intrinsic dimension first rises, then falls",
    "expansion then compression over Pythia's revisions step0 ... step143000",
    f"per layer, [SL]'s estimator sl_id against step: holds if for some layer the largest value is at an inner "
    f"checkpoint, at least {CHANGE:.0%} above the first and {CHANGE:.0%} above the last (TwoNN twonn_id at the "
    "same checkpoints reported beside it); not applicable with fewer than 3 checkpoints",
    '"the intrinsic dimension of embeddings increases in the initial phases of training, indicating an '
    "expansion into higher-dimensional space. This fact is then followed by a compression phase towards the "
    'end of training with dimensionality decrease" (abstract)',
)
CLAIMS = (SL_DECODER_PEAK, SL_ENCODER_FLAT, SL_ID_TRAINING)
MIN_LAYERS = 2  # a depth claim needs at least two stored layers to compare


def before_final_norm(table: pl.DataFrame) -> pl.DataFrame:
    """The stored layers of a table that are not taken after the final norm."""
    return table.filter(~pl.col("after_final_norm"))


def decoder_peak(table: pl.DataFrame) -> Measure:
    """Bell shape of a decoder's top singular share: an interior peak with both ends lower by BELL_DROP of it."""
    if table["kind"][0] != "decoder":
        return not_applicable(f"{table['kind'][0]} model")
    kept = before_final_norm(table).filter(pl.col("sigma1_share").is_finite()).sort("layer")
    if kept.height < MIN_LAYERS:
        return not_applicable(f"{kept.height} stored layer(s) before the final norm (at least {MIN_LAYERS} needed)")
    row = kept.sort("sigma1_share", descending=True).row(0, named=True)
    first, last = kept["sigma1_share"][0], kept["sigma1_share"][-1]
    text = (
        f"peak {row['sigma1_share']:.3f} at layer {row['layer']} (depth {row['relative_depth']:.2f}), "
        f"ends {first:.3f} and {last:.3f}"
    )
    if not PEAK_DEPTH[0] <= row["relative_depth"] <= PEAK_DEPTH[1]:
        return within(text, row["relative_depth"], PEAK_DEPTH, row["layer"])
    drop = 1 - max(first, last) / row["sigma1_share"]
    return at_least(f"{text}: the higher end {drop:.0%} below the peak", drop, BELL_DROP, row["layer"])


def encoder_flat(table: pl.DataFrame) -> Measure:
    """Range of the top singular share of an encoder over its layers."""
    if table["kind"][0] != "encoder":
        return not_applicable(f"{table['kind'][0]} model")
    share = table["sigma1_share"].filter(table["sigma1_share"].is_finite())
    if len(share) < MIN_LAYERS:
        return not_applicable(f"{len(share)} stored layer(s) (at least {MIN_LAYERS} needed)")
    spread = share.max() - share.min()
    return at_most(f"sigma1_share {share.min():.3f} .. {share.max():.3f} (range {spread:.3f})", spread, FLAT_RANGE)


def expansion_then_compression(steps: list[int], tables: list[pl.DataFrame]) -> Measure:
    """The layer whose sl_id over the checkpoints rises and falls the most, by the rule of the claim, with its
    twonn_id at the same checkpoints beside it."""
    if len(steps) < 3:
        return not_applicable(f"{len(steps)} checkpoint(s)")
    series = pl.concat(
        [t.select("layer", "sl_id", "twonn_id").with_columns(step=pl.lit(s)) for s, t in zip(steps, tables)]
    )
    best, best_score, best_layer = "", -np.inf, None
    for (layer,), rows in series.sort("step").group_by("layer", maintain_order=True):
        values, twonn, at = rows["sl_id"].to_list(), rows["twonn_id"].to_list(), rows["step"].to_list()
        peak = max(range(len(values)), key=values.__getitem__)
        score = min(values[peak] / values[0], values[peak] / values[-1]) - 1
        if score > best_score:
            best_score, best_layer = score, layer
            best = (
                f"layer {layer}: {values[0]:.2f} (step {at[0]}), largest {values[peak]:.2f} (step {at[peak]}), "
                f"{values[-1]:.2f} (step {at[-1]}); TwoNN {twonn[0]:.2f}, {twonn[peak]:.2f}, {twonn[-1]:.2f}"
            )
    return at_least(best, best_score, CHANGE, best_layer)


def findings(
    tables: dict[tuple[str, str], pl.DataFrame],
    training: dict[tuple[str, str], list[tuple[int, pl.DataFrame]]],
    selection: str,
    id_sample: str,
) -> list[Finding]:
    """The depth claims on every (model, corpus) table, the training claim on every (family, corpus)."""
    rows = []
    for (model, corpus), table in tables.items():
        for claim, measure in ((SL_DECODER_PEAK, decoder_peak(table)), (SL_ENCODER_FLAT, encoder_flat(table))):
            rows.append(finding(claim, model, corpus, selection, measure))
    for (family, corpus), checkpoints in training.items():
        measure = expansion_then_compression([s for s, _ in checkpoints], [t for _, t in checkpoints])
        rows.append(finding(SL_ID_TRAINING, family, corpus, f"{selection}; {id_sample}", measure))
    return rows
