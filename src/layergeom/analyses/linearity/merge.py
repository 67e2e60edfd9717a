"""The linearity merge: every consecutive pair's cross products and both layers' scatters over the shards into one
row per pair."""

from __future__ import annotations

import polars as pl

from layergeom.analyses.linearity.accumulate import NAME
from layergeom.analyses.linearity.metrics import pair_row
from layergeom.analyses.spec import MergeJob
from layergeom.io.atomic import write_parquet
from layergeom.io.store import layer_axis, open_hidden, read_tokens
from layergeom.stats.protocol import load_merged
from layergeom.stats.scatter import CrossProduct, Scatter
from layergeom.stream.feeds import scatter_name
from layergeom.stream.selection import token_mask


def joint_blocks(parts, pair: int, name: str) -> tuple:
    """S_xx, S_xy, S_yy of stored layer ``pair`` and the next: the layers' shared scatters around the cross products."""
    cross = load_merged(parts, pair, NAME, CrossProduct)
    scatters = [load_merged(parts, layer, name, Scatter) for layer in (pair, pair + 1)]
    if any(scatter.count != cross.count for scatter in scatters):
        raise ValueError(f"layer {pair}: the cross products and the scatters cover different tokens")
    return scatters[0].scatter, cross.finalize(), scatters[1].scatter


def pair_table(header, tokens, parts, selection: dict) -> pl.DataFrame:
    """layer, next_layer (model indices of consecutive stored layers), layer_name, relative_depth (of ``layer``),
    after_final_norm (of ``layer``), next_after_final_norm (of ``next_layer``), linearity, linearity_residual, cka
    and the model's kind."""
    array = open_hidden(header)
    axis = layer_axis(array)
    name = scatter_name(token_mask(read_tokens(tokens, array), **selection))
    rows = [pair_row(*joint_blocks(parts, pair, name)) for pair in range(axis.height - 1)]
    values = pl.DataFrame(rows, schema=dict.fromkeys(("linearity", "linearity_residual", "cka"), pl.Float64))
    pairs = pl.concat(
        [
            axis.head(axis.height - 1).select("layer", "layer_name", "relative_depth", "after_final_norm"),
            axis.tail(axis.height - 1).select(
                pl.col("layer").alias("next_layer"), pl.col("after_final_norm").alias("next_after_final_norm")
            ),
            values,
        ],
        how="horizontal",
    )
    kind = pl.lit(array.attrs.get("kind"), dtype=pl.Utf8).alias("kind")
    return pairs.select("layer", "next_layer", pl.exclude("layer", "next_layer"), kind)


def merge(job: MergeJob) -> None:
    """Write the per-pair table."""
    write_parquet(pair_table(job.header, job.tokens, job.parts, dict(job.selection)), job.outputs["table"])
