"""The massive-activations tables: per layer the largest |x| against the median |x|, and the top entries."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.analyses.massive.accumulate import HISTOGRAM, TOP
from layergeom.analyses.massive.histogram import AbsHistogram
from layergeom.analyses.massive.top import TopEntries
from layergeom.analyses.spec import MergeJob
from layergeom.findings.massive import is_massive
from layergeom.io.atomic import write_parquet
from layergeom.io.store import layer_axis, open_hidden, read_tokens
from layergeom.stats.protocol import load_merged

TOP_SCHEMA = {
    "layer": pl.Int64,
    "rank": pl.Int64,
    "value": pl.Float64,
    "dim": pl.Int64,
    "row": pl.Int64,
    "position": pl.Int64,
    "token_id": pl.Int64,
    "token": pl.Utf8,
}


def top_rows(layer: int, top: TopEntries, tokens: pl.DataFrame, k: int) -> pl.DataFrame:
    """The ``k`` largest entries of one layer with their token's position, id and string."""
    value, row, dim = (array[:k] for array in top.finalize())
    picked = tokens[row]
    return pl.DataFrame(
        {
            "layer": [layer] * len(value),
            "rank": np.arange(1, len(value) + 1),
            "value": value,
            "dim": dim,
            "row": row,
            "position": picked["position"],
            "token_id": picked["token_id"],
            "token": picked["token"],
        },
        schema=TOP_SCHEMA,
    )


def layer_row(top: pl.DataFrame, median: dict) -> dict:
    """The layer's largest entry, its median bin, their ratio, the criterion and the top entries' shares."""
    first, magnitude = top.row(0, named=True), top["value"].abs()
    max_abs = magnitude[0]
    ratio = max_abs / median["median_abs"]
    return {
        "max_abs": max_abs,
        "max_dim": first["dim"],
        "max_position": first["position"],
        "max_token": first["token"],
        **median,
        "ratio": ratio,
        "massive": bool(is_massive(max_abs, ratio)),
        "n_massive_top": int(is_massive(magnitude, magnitude / median["median_abs"]).sum()),
        "first_position_share": float((top["position"] == 0).mean()),
    }


def massive_tables(job: MergeJob) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(layer table, top table) from the merged partials of every stored layer."""
    array = open_hidden(job.header)
    tokens, axis, k = read_tokens(job.tokens, array), layer_axis(array), job.settings["top_k"]
    tops, rows = [], []
    for position, layer in enumerate(axis["layer"]):
        top = top_rows(layer, load_merged(job.parts, position, TOP, TopEntries), tokens, k)
        if top.height == 0:
            raise ValueError(f"{job.header}: layer {layer} has no selected token")
        tops.append(top)
        rows.append(layer_row(top, load_merged(job.parts, position, HISTOGRAM, AbsHistogram).finalize()))
    table = pl.concat([axis, pl.DataFrame(rows)], how="horizontal")
    return table.with_columns(kind=pl.lit(array.attrs.get("kind"), dtype=pl.Utf8)), pl.concat(tops)


def merge(job: MergeJob) -> None:
    """Write the layer table and the top table."""
    table, top = massive_tables(job)
    write_parquet(table, job.outputs["table"])
    write_parquet(top, job.outputs["top"])
