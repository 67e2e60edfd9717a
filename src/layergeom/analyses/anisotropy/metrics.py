"""The anisotropy tables: spectrum and mean cosines from merged shards, intrinsic dimension of one sample.

Pass 1 (the stream shards) accumulates unit-vector sums and the shared centered scatter; their merge
gives the spectrum measures and each layer's mean; pass 2 (per shard) sums the unit vectors of the
centered states; the ID job reads only a bounded subsample of each layer. In fused mode (no store) the ID
sample comes with the stream partials, and the centered cosine is taken on that sample.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import polars as pl
import zarr

from layergeom.analyses.anisotropy import intrinsic_dimension as idim
from layergeom.analyses.anisotropy.accumulate import CENTERED, SAMPLE, UNITS, centered_feeds, sample_feeds
from layergeom.io.atomic import atomic_output, write_parquet
from layergeom.io.store import open_hidden, read_tokens, with_layer_axis
from layergeom.joblog import tracked
from layergeom.stats.protocol import load_merged
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import UnitSum
from layergeom.stream.driver import stream_layers
from layergeom.stream.feeds import load_scatter
from layergeom.stream.job import stream_shard
from layergeom.stream.selection import token_mask

log = logging.getLogger("layergeom")

TOP_SHARES = 10
CENTERED_ON_ALL = "all_tokens"  # centered_method: exact, over every selected token (pass 2 over the store)
CENTERED_ON_SAMPLE = "id_sample"  # fused mode: over the intrinsic-dimension sample, about the exact layer mean
METADATA = {
    "model": pl.Utf8,
    "corpus": pl.Utf8,
    "model_source": pl.Utf8,
    "revision": pl.Utf8,
    "init": pl.Utf8,
    "kind": pl.Utf8,
}


def spectrum_measures(eigenvalues: np.ndarray, top: int = 10) -> dict:
    """sigma_1^2 / sum sigma_i^2, the top shares and the effective rank exp(entropy of the shares)."""
    total = float(eigenvalues.sum())
    if total <= 0:
        nan_shares = [math.nan] * min(top, len(eigenvalues))
        return {"sigma1_share": math.nan, "top_shares": nan_shares, "eff_rank": math.nan, "total_variance": total}
    shares = eigenvalues / total
    positive = shares[shares > 0]
    entropy = -float(np.sum(positive * np.log(positive)))
    return {
        "sigma1_share": float(shares[0]),
        "top_shares": shares[:top].tolist(),
        "eff_rank": math.exp(entropy),
        "total_variance": total,
    }


def merge_moments(
    parts: Sequence[str | os.PathLike], mask: np.ndarray, n_layers: int
) -> tuple[pl.DataFrame, np.ndarray]:
    """Merge pass-1 shards: the spectrum measures per layer and the (layers, d) means."""
    rows, means = [], []
    for layer in tracked(range(n_layers), n_layers, "layers"):
        units, scatter = (
            load_merged(parts, layer, UNITS, UnitSum),
            load_scatter(parts, layer, mask),
        )
        if scatter.count == 0:
            raise ValueError(f"layer {layer}: no token was selected")
        measures = spectrum_measures(scatter.finalize(), TOP_SHARES)
        rows.append(
            {
                "layer": layer,
                "n_tokens": scatter.count,
                "mean_cos": units.finalize(),
                "sigma1_share": measures["sigma1_share"],
                "top10_shares": measures["top_shares"],
                "eff_rank": measures["eff_rank"],
                "total_variance": measures["total_variance"],
            }
        )
        means.append(scatter.mean)
    return pl.DataFrame(rows), np.stack(means)


def write_spectrum(
    states: str | os.PathLike,
    tokens: str | os.PathLike,
    parts: Sequence[str | os.PathLike],
    selection: dict,
    spectrum_out: str | os.PathLike,
    means_out: str | os.PathLike,
) -> None:
    """Merge pass 1 into the spectrum table and the layer means that pass 2 centers on."""
    array = open_hidden(states)
    mask = token_mask(read_tokens(tokens, array), **selection)
    spectrum, means = merge_moments(parts, mask, array.shape[0])
    log.info("%d layers merged from %d shards", spectrum.height, len(parts))
    write_parquet(spectrum, spectrum_out)
    with atomic_output(means_out) as tmp, open(tmp, "wb") as handle:
        np.save(handle, means)


def write_centered(
    states: str | os.PathLike,
    tokens: str | os.PathLike,
    means: str | os.PathLike,
    selection: dict,
    shard: str,
    block_tokens: int | None,
    out: str | os.PathLike,
) -> None:
    """Pass 2 over token shard ``k-of-n``: unit-vector sums of the states minus their layer's mean."""
    centers = np.load(means)
    stream_shard(states, tokens, out, shard, lambda table: centered_feeds(table, selection, centers), block_tokens)


def merge_centered(parts: Sequence[str | os.PathLike], n_layers: int) -> pl.DataFrame:
    """Merge pass-2 shards: the centered mean pairwise cosine per layer, over every selected token."""
    values = [
        load_merged(parts, layer, CENTERED, UnitSum).finalize()
        for layer in tracked(range(n_layers), n_layers, "layers")
    ]
    return pl.DataFrame({"layer": np.arange(n_layers), "mean_cos_centered": values, "centered_method": CENTERED_ON_ALL})


def id_row(layer: int, sample: np.ndarray, settings: dict) -> dict:
    """The intrinsic-dimension estimates of one layer's sample (rows of the table ``id.parquet``)."""
    est = idim.estimate(
        sample,
        settings["discard_fraction"],
        settings["k_neighbors"],
        settings["bootstrap"],
        settings["confidence"],
        settings["seed"],
        settings["block_points"],
    )
    log.info(
        "layer %d: TwoNN %.2f [%.2f, %.2f], [SL] %.2f [%.2f, %.2f], Levina-Bickel %.2f, %d of %d points used",
        layer,
        est.twonn,
        est.twonn_lo,
        est.twonn_hi,
        est.sl,
        est.sl_lo,
        est.sl_hi,
        est.levina_bickel,
        est.n_used,
        est.n_points,
    )
    return {
        "layer": layer,
        "twonn_id": est.twonn,
        "twonn_lo": est.twonn_lo,
        "twonn_hi": est.twonn_hi,
        "twonn_mle": est.twonn_mle,
        "twonn_mle_lo": est.twonn_mle_lo,
        "twonn_mle_hi": est.twonn_mle_hi,
        "levina_bickel_id": est.levina_bickel,
        "sl_id": est.sl,
        "sl_id_lo": est.sl_lo,
        "sl_id_hi": est.sl_hi,
        "sl_dropped": est.sl_dropped,
        "id_points": est.n_points,
        "n_used": est.n_used,
        "n_duplicates": est.n_duplicates,
    }


def check_sample(n_points: int) -> None:
    """The intrinsic dimension needs at least 3 points."""
    if n_points < 3:
        raise ValueError(f"only {n_points} tokens selected; the intrinsic dimension needs at least 3")


def id_table(
    array: zarr.Array, tokens: pl.DataFrame, mask: np.ndarray, settings: dict, block_tokens: int | None
) -> pl.DataFrame:
    """Intrinsic dimension of every layer on one subsample of tokens (the same rows at every layer)."""
    rows = idim.subsample_rows(tokens, mask, settings["n_points"], settings["sample"], settings["seed"])
    check_sample(len(rows))
    layers = stream_layers(array, sample_feeds(array.shape[1], rows), block_tokens=block_tokens)
    return pl.DataFrame(
        [id_row(layer, acc[SAMPLE].finalize(), settings) for layer, acc in tracked(layers, array.shape[0], "layers")]
    )


def write_id(
    states: str | os.PathLike,
    tokens: str | os.PathLike,
    selection: dict,
    settings: dict,
    block_tokens: int | None,
    out: str | os.PathLike,
) -> None:
    """The intrinsic-dimension table of every layer on the configured sample."""
    array = open_hidden(states)
    table = read_tokens(tokens, array)
    write_parquet(id_table(array, table, token_mask(table, **selection), settings, block_tokens), out)


def write_id_fused(
    parts: Sequence[str | os.PathLike], means: str | os.PathLike, settings: dict, out: str | os.PathLike
) -> None:
    """Fused mode: the intrinsic dimension of the sample collected by the fused extraction, and the centered
    mean cosine of that sample about the merged layer means (no store to make an exact second pass over)."""
    centers = np.load(means)
    rows = []
    for layer in tracked(range(len(centers)), len(centers), "layers"):
        sample = load_merged(parts, layer, SAMPLE, PointSample).finalize()
        check_sample(len(sample))
        centered = UnitSum(sample.shape[1], centers[layer])
        centered.update(sample, np.arange(len(sample)))
        rows.append({**id_row(layer, sample, settings), "mean_cos_centered": centered.finalize()})
    write_parquet(pl.DataFrame(rows).with_columns(pl.lit(CENTERED_ON_SAMPLE).alias("centered_method")), out)


def layer_table(
    array: zarr.Array, spectrum: pl.DataFrame, centered: pl.DataFrame, ids: pl.DataFrame, selection: dict
) -> pl.DataFrame:
    """One row per layer: names, relative depth, every measure, the selection and the store's metadata."""
    attrs = dict(array.attrs)
    table = spectrum.join(centered, on="layer").join(ids, on="layer").sort("layer")
    table = with_layer_axis(table, array)
    return table.with_columns(
        pl.lit(selection["include_special"]).alias("include_special"),
        pl.lit(selection["exclude_first_position"]).alias("exclude_first_position"),
        *(pl.lit(attrs.get(key), dtype=dtype).alias(key) for key, dtype in METADATA.items()),
    )


def random_baselines(models: list[tuple[str, str, str | None, str]]) -> list[tuple[str, str]]:
    """(trained, untrained) name pairs among (name, source, revision, init) entries sharing source and revision."""
    return [
        (trained, untrained)
        for untrained, source, revision, init in models
        if init == "random"
        for trained, source_t, revision_t, init_t in models
        if init_t == "pretrained" and (source_t, revision_t) == (source, revision)
    ]


def write_table(
    states: str | os.PathLike,
    spectrum: str | os.PathLike,
    centered: Sequence[str | os.PathLike],
    ids: str | os.PathLike,
    selection: dict,
    out: str | os.PathLike,
) -> pl.DataFrame:
    """Join the spectrum, the centered cosines (merged pass-2 shards, or with none, fused mode, the ID job's
    cosines of its sample) and the intrinsic dimension into the anisotropy table."""
    array = open_hidden(states)
    id_columns = pl.read_parquet(ids)
    if centered:
        centered_columns = merge_centered(centered, array.shape[0])
    else:
        centered_columns = id_columns.select("layer", "mean_cos_centered", "centered_method")
        id_columns = id_columns.drop("mean_cos_centered", "centered_method")
    table = layer_table(array, pl.read_parquet(spectrum), centered_columns, id_columns, selection)
    log.info(
        "\n%s",
        table.select(
            "layer",
            "mean_cos",
            "mean_cos_centered",
            "sigma1_share",
            "eff_rank",
            "twonn_id",
            "sl_id",
            "levina_bickel_id",
        ),
    )
    write_parquet(table, out)
    return table
