"""The anisotropy stage: sharded passes over a store, their merges, and the per-layer table.

Pass 1 (per token shard) accumulates unit-vector sums and centered scatter matrices; their
merge gives the spectrum measures and each layer's mean; pass 2 (per shard) sums the unit
vectors of the centered states; the ID job reads only a bounded subsample of each layer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import zarr

from layergeom import intrinsic_dimension as idim
from layergeom.atomic import atomic_output
from layergeom.spectrum import (
    UnitSum,
    layer_centered_units,
    layer_moments,
    load_accumulators,
    save_accumulators,
    shard_mask,
    spectrum_measures,
)
from layergeom.store import layer_names

log = logging.getLogger("layergeom")

TOP_SHARES = 10
METADATA = {"model": pl.Utf8, "corpus": pl.Utf8, "model_source": pl.Utf8, "revision": pl.Utf8, "init": pl.Utf8,
            "kind": pl.Utf8, "last_layer_after_final_norm": pl.Boolean}


def _layer_file(folder: str | os.PathLike, layer: int) -> Path:
    return Path(folder) / f"layer_{layer:03d}.npz"


def moments_pass(
    array: zarr.Array, mask: np.ndarray, shard: int, n_shards: int, out_dir: str | os.PathLike, block_tokens: int | None
) -> None:
    """Pass 1 over one token shard: a folder with one accumulator file per layer."""
    part = shard_mask(mask, array.chunks[1], shard, n_shards)
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        for layer in range(array.shape[0]):
            units, scatter = layer_moments(array, layer, part, block_tokens)
            save_accumulators(_layer_file(tmp, layer), {"units": units, "scatter": scatter})
            log.info("layer %d: %d tokens of shard %d/%d", layer, scatter.count, shard + 1, n_shards)


def merge_moments(shard_dirs: list[str], n_layers: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Merge pass-1 shards: the spectrum measures per layer and the (layers, d) means."""
    rows, means = [], []
    for layer in range(n_layers):
        parts = [load_accumulators(_layer_file(folder, layer)) for folder in shard_dirs]
        units, scatter = parts[0]["units"], parts[0]["scatter"]
        for part in parts[1:]:
            units, scatter = units.merge(part["units"]), scatter.merge(part["scatter"])
        if scatter.count == 0:
            raise ValueError(f"layer {layer}: no token was selected")
        if not (np.isfinite(scatter.scatter).all() and np.isfinite(units.total).all()):
            raise ValueError(f"layer {layer}: non-finite hidden states in the store")
        measures = spectrum_measures(scatter.eigenvalues(), TOP_SHARES)
        rows.append(
            {
                "layer": layer,
                "n_tokens": scatter.count,
                "mean_cos": units.mean_cosine(),
                "sigma1_share": measures["sigma1_share"],
                "top10_shares": measures["top_shares"],
                "eff_rank": measures["eff_rank"],
                "total_variance": measures["total_variance"],
            }
        )
        means.append(scatter.mean)
    return pl.DataFrame(rows), np.stack(means)


def centered_pass(array: zarr.Array, mask: np.ndarray, means: np.ndarray, shard: int, n_shards: int,
                  block_tokens: int | None) -> dict[str, UnitSum]:
    """Pass 2 over one token shard: unit-vector sums of the states minus their layer's mean."""
    part = shard_mask(mask, array.chunks[1], shard, n_shards)
    return {f"layer_{layer:03d}": layer_centered_units(array, layer, part, means[layer], block_tokens)
            for layer in range(array.shape[0])}


def merge_centered(parts: list[dict[str, UnitSum]], n_layers: int) -> pl.DataFrame:
    """Merge pass-2 shards: the centered mean pairwise cosine per layer."""
    values = []
    for layer in range(n_layers):
        total = UnitSum.empty(len(parts[0][f"layer_{layer:03d}"].total))
        for part in parts:
            total = total.merge(part[f"layer_{layer:03d}"])
        values.append(total.mean_cosine())
    return pl.DataFrame({"layer": np.arange(n_layers), "mean_cos_centered": values})


def id_table(array: zarr.Array, tokens: pl.DataFrame, mask: np.ndarray, settings: dict,
             block_tokens: int | None) -> pl.DataFrame:
    """Intrinsic dimension of every layer on one subsample of tokens (the same rows at every layer)."""
    rows = idim.subsample_rows(tokens, mask, settings["n_points"], settings["sample"], settings["seed"])
    if len(rows) < 3:
        raise ValueError(f"only {len(rows)} tokens selected; the intrinsic dimension needs at least 3")
    out = []
    for layer in range(array.shape[0]):
        x = idim.read_rows(array, layer, rows, block_tokens)
        est = idim.estimate(x, settings["discard_fraction"], settings["k_neighbors"], settings["bootstrap"],
                            settings["confidence"], settings["seed"], settings["block_points"])
        log.info("layer %d: TwoNN %.2f [%.2f, %.2f], Levina-Bickel %.2f, %d of %d points used",
                 layer, est.twonn, est.twonn_lo, est.twonn_hi, est.levina_bickel, est.n_used, est.n_points)
        out.append(
            {
                "layer": layer,
                "twonn_id": est.twonn,
                "twonn_lo": est.twonn_lo,
                "twonn_hi": est.twonn_hi,
                "twonn_mle": est.twonn_mle,
                "twonn_mle_lo": est.twonn_mle_lo,
                "twonn_mle_hi": est.twonn_mle_hi,
                "levina_bickel_id": est.levina_bickel,
                "id_points": est.n_points,
                "n_used": est.n_used,
                "n_duplicates": est.n_duplicates,
            }
        )
    return pl.DataFrame(out)


def layer_table(array: zarr.Array, spectrum: pl.DataFrame, centered: pl.DataFrame, ids: pl.DataFrame,
                selection: dict) -> pl.DataFrame:
    """One row per layer: names, relative depth, every measure, the selection and the store's metadata."""
    attrs = dict(array.attrs)
    n_blocks = int(attrs.get("n_layers") or array.shape[0] - 1)
    table = spectrum.join(centered, on="layer").join(ids, on="layer").sort("layer")
    return table.with_columns(
        pl.Series("layer_name", layer_names(array)),
        (pl.col("layer") / max(n_blocks, 1)).alias("relative_depth"),
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
