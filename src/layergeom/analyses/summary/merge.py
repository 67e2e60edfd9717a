"""The summary table: one row per layer from the merged norm sums of every shard."""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl

from layergeom.analyses.spec import MergeJob
from layergeom.analyses.summary.accumulate import NAME, NormSums
from layergeom.io.atomic import write_parquet
from layergeom.io.store import layer_axis, open_hidden
from layergeom.stats.protocol import load_merged


def summary_table(states: str | os.PathLike, parts: Sequence[str | os.PathLike]) -> pl.DataFrame:
    """layer, layer_name, relative_depth, n_tokens, mean_norm, mean_sq_norm."""
    array = open_hidden(states)
    rows = [load_merged(parts, layer, NAME, NormSums).finalize() for layer in range(array.shape[0])]
    values = pl.DataFrame(rows, schema={"n_tokens": pl.Int64, "mean_norm": pl.Float64, "mean_sq_norm": pl.Float64})
    return pl.concat([layer_axis(array), values], how="horizontal")


def merge(job: MergeJob) -> None:
    """Merge the shards' norm sums and write the summary table."""
    write_parquet(summary_table(job.header, job.parts), job.outputs["table"])
