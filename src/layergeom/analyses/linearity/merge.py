"""The linearity merge: every consecutive pair's joint scatter over the shards into one row per pair."""

from __future__ import annotations

import polars as pl

from layergeom.analyses.linearity.accumulate import NAME
from layergeom.analyses.linearity.metrics import pair_row
from layergeom.analyses.spec import MergeJob
from layergeom.io.atomic import write_parquet
from layergeom.io.store import layer_axis, open_hidden
from layergeom.stats.protocol import load_merged
from layergeom.stats.scatter import CrossScatter


def pair_table(header, parts) -> pl.DataFrame:
    """layer, next_layer (model indices of consecutive stored layers), layer_name, relative_depth (of ``layer``),
    after_final_norm (of ``layer``), next_after_final_norm (of ``next_layer``), linearity, linearity_residual, cka
    and the model's kind."""
    array = open_hidden(header)
    axis = layer_axis(array)
    rows = [pair_row(*load_merged(parts, pair, NAME, CrossScatter).finalize()) for pair in range(axis.height - 1)]
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
    write_parquet(pair_table(job.header, job.parts), job.outputs["table"])
