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
from layergeom.stats.scatter import CrossProduct
from layergeom.stream.feeds import load_scatter
from layergeom.stream.selection import token_mask


def pair_rows(parts, n_layers: int, mask) -> list[dict[str, float]]:
    """pair_row of every consecutive pair: S_xy from the pair's cross products, S_xx and S_yy from the two layers'
    shared scatters, each layer's read once."""
    rows, previous = [], load_scatter(parts, 0, mask)
    for pair in range(n_layers - 1):
        cross, following = load_merged(parts, pair, NAME, CrossProduct), load_scatter(parts, pair + 1, mask)
        if not previous.count == cross.count == following.count:
            raise ValueError(f"layer {pair}: the cross products and the scatters cover different tokens")
        rows.append(pair_row(previous.scatter, cross.finalize()[0], following.scatter))
        previous = following
    return rows


def pair_table(header, tokens, parts, selection: dict) -> pl.DataFrame:
    """layer, next_layer (model indices of consecutive stored layers), layer_name, relative_depth (of ``layer``),
    after_final_norm (of ``layer``), next_after_final_norm (of ``next_layer``), linearity, linearity_residual, cka
    and the model's kind."""
    array = open_hidden(header)
    axis = layer_axis(array)
    rows = pair_rows(parts, axis.height, token_mask(read_tokens(tokens, array), **selection))
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
