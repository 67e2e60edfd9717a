"""[SL] claims on the anisotropy tables: the top singular share over depth (decoders peak in the middle, encoders
flat) and the intrinsic dimension over training (expansion, then compression); [AS]'s claim that a byte-level model
is anisotropic too."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.findings.verdicts import (
    MIDDLE,
    Claim,
    Finding,
    Measure,
    at_least,
    at_most,
    finding,
    middle,
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
    f"[SL]'s estimator sl_id averaged over the layers before any final norm, against step: holds if its largest "
    f"value is at an inner checkpoint, at least {CHANGE:.0%} above the first and {CHANGE:.0%} above the last (TwoNN "
    "twonn_id averaged alike, reported beside it); not applicable with fewer than 3 checkpoints",
    '"the intrinsic dimension of embeddings increases in the initial phases of training, indicating an '
    "expansion into higher-dimensional space. This fact is then followed by a compression phase towards the "
    'end of training with dimensionality decrease" (abstract)',
)
BYTE_VOCAB = 257  # the 256 bytes and the end-of-text token: a byte-level tokenizer without merges
BYTE_LIFT = 0.1  # above the untrained model's middle-layer mean cosine
BYTE_SHARE = 0.5  # of the BPE model's middle-layer mean cosine
AS_BYTE_LEVEL = Claim(
    "as_byte_level",
    "AS",
    "a byte-level language model is anisotropic too (not only a token-frequency effect)",
    "character- and byte-level models (CharacterBERT, CANINE, MANTa, ByT5 in the body) show a high mean cosine",
    f"a family trained by the workflow with a byte-level tokenizer (vocab_size {BYTE_VOCAB}): the mean of mean_cos "
    f"over the middle layers (relative depth in [{MIDDLE[0]:.2f}, {MIDDLE[1]:.2f}], before any final norm) at its last "
    f"checkpoint must be at least {BYTE_LIFT} above the same at its step 0 (the untrained model) and at least "
    f"{BYTE_SHARE:.0%} of the same for a BPE family of the same corpus at its last checkpoint; not applicable without "
    "step 0 or a BPE family",
    '"We show in this paper that anisotropy can also be observed empirically in language models with specific '
    'objectives that should not suffer directly from the same consequences." (abstract)',
)
VISION_LIFT = 0.1  # above the untrained ViT's middle-layer mean cosine
VISION_SHARE = 0.5  # of the BPE language model's middle-layer mean cosine
AS_VISION = Claim(
    "as_vision",
    "AS",
    "a vision transformer is anisotropic too (not only language models)",
    "vision and speech transformers show a high mean cosine",
    f"a ViT trained by the workflow on an image corpus (patches as tokens): the mean of mean_cos over the middle "
    f"layers (relative depth in [{MIDDLE[0]:.2f}, {MIDDLE[1]:.2f}]) at its last checkpoint must be at least "
    f"{VISION_LIFT} above the same at its step 0 (the untrained model) and at least {VISION_SHARE:.0%} of the same "
    "for a BPE language model trained by the workflow at its last checkpoint; not applicable without step 0 or a "
    "BPE family",
    '"We also show that the anisotropy problem extends to Transformers trained on other modalities." (abstract)',
)
CLAIMS = (SL_DECODER_PEAK, SL_ENCODER_FLAT, SL_ID_TRAINING, AS_BYTE_LEVEL, AS_VISION)
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


def layer_means(table: pl.DataFrame) -> tuple[float | None, float | None]:
    """sl_id and twonn_id averaged over the finite values of the layers before any final norm (None: none)."""
    return before_final_norm(table).select(pl.col("sl_id", "twonn_id").fill_nan(None).mean()).row(0)


def expansion_then_compression(steps: list[int], tables: list[pl.DataFrame]) -> Measure:
    """sl_id averaged over the layers before any final norm at every checkpoint: how far its largest value, at an
    inner checkpoint, lies above the first and the last (the smaller ratio, minus 1); twonn_id averaged beside it."""
    if len(steps) < 3:
        return not_applicable(f"{len(steps)} checkpoint(s)")
    values, twonn = zip(*map(layer_means, tables))
    if None in values:
        return not_applicable("a checkpoint without a finite sl_id before the final norm")
    peak = max(range(len(values)), key=values.__getitem__)
    beside = ", ".join("n/a" if twonn[i] is None else f"{twonn[i]:.2f}" for i in (0, peak, -1))
    text = (
        f"layer mean {values[0]:.2f} (step {steps[0]}), largest {values[peak]:.2f} (step {steps[peak]}), "
        f"{values[-1]:.2f} (step {steps[-1]}); TwoNN {beside}"
    )
    return at_least(text, min(values[peak] / values[0], values[peak] / values[-1]) - 1, CHANGE)


def middle_cos(table: pl.DataFrame) -> float:
    """Mean of mean_cos over the middle layers before any final norm (NaN when there are none)."""
    values = middle(before_final_norm(table))["mean_cos"]
    return float(values.mean()) if len(values) else np.nan


def against_baselines(
    checkpoints: list[tuple[int, pl.DataFrame]],
    bpe: list[tuple[str, list[tuple[int, pl.DataFrame]]]],
    lift: float,
    share: float,
) -> Measure:
    """A family's last checkpoint against its step 0 (at least ``lift`` above) and against a BPE family's last
    checkpoint (at least ``share`` of it), on the middle-layer mean cosine."""
    steps = [s for s, _ in checkpoints]
    if steps[0] != 0 or len(steps) < 2:
        return not_applicable(f"checkpoints {steps}: step 0 and a later one are needed")
    if not bpe:
        return not_applicable("no BPE family trained by the workflow to compare with")
    trained, untrained = middle_cos(checkpoints[-1][1]), middle_cos(checkpoints[0][1])
    family, reference = bpe[0]
    other = middle_cos(reference[-1][1])
    text = (
        f"middle-layer mean_cos {trained:.3f} at step {steps[-1]}, {untrained:.3f} at step 0; "
        f"BPE {family} {other:.3f} at step {reference[-1][0]}"
    )
    if not np.isfinite([trained, untrained, other]).all():
        return not_applicable(f"{text}: no middle layer stored before the final norm")
    return at_least(text, trained, max(untrained + lift, share * other))


def findings(
    tables: dict[tuple[str, str], pl.DataFrame],
    training: dict[tuple[str, str], list[tuple[int, pl.DataFrame]]],
    selection: str,
    id_sample: str,
    families: dict[str, dict],
) -> list[Finding]:
    """The depth claims on every (model, corpus) table, the training claims on every (family, corpus); ``families``:
    the architecture and vocab_size of every family trained by the workflow."""
    rows = []
    for (model, corpus), table in tables.items():
        for claim, measure in ((SL_DECODER_PEAK, decoder_peak(table)), (SL_ENCODER_FLAT, encoder_flat(table))):
            rows.append(finding(claim, model, corpus, selection, measure))
    for (family, corpus), checkpoints in training.items():
        measure = expansion_then_compression([s for s, _ in checkpoints], [t for _, t in checkpoints])
        rows.append(finding(SL_ID_TRAINING, family, corpus, f"{selection}; {id_sample}", measure))
    kind = {family: training_kind(run) for family, run in families.items()}
    for (family, corpus), checkpoints in training.items():
        if kind.get(family) == "byte":
            bpe = [(f, c) for (f, k), c in training.items() if k == corpus and kind.get(f) == "bpe"]
            measure = against_baselines(checkpoints, bpe, BYTE_LIFT, BYTE_SHARE)
            rows.append(finding(AS_BYTE_LEVEL, family, corpus, selection, measure))
        if kind.get(family) == "vision":
            bpe = [(f, c) for (f, _), c in training.items() if kind.get(f) == "bpe"]
            measure = against_baselines(checkpoints, bpe, VISION_LIFT, VISION_SHARE)
            rows.append(finding(AS_VISION, family, corpus, selection, measure))
    return rows


def training_kind(run: dict) -> str:
    """``vision`` for a ViT run, ``byte`` for a GPT-2 on a byte-level tokenizer, else ``bpe``."""
    if run["architecture"] == "vit":
        return "vision"
    return "byte" if run["vocab_size"] == BYTE_VOCAB else "bpe"
