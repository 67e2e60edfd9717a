"""The dimensions tables: pass 2 (standardized unit sums per shard of a store), the standardized cosine (exact over
every selected token, or in fused mode on the sample), and the per-layer and top-dimension tables."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import polars as pl

from layergeom.analyses.dimensions.accumulate import SAMPLE, STANDARDIZED, standardized_feeds
from layergeom.io.atomic import write_parquet
from layergeom.io.store import layer_axis, open_hidden
from layergeom.joblog import tracked
from layergeom.stats.protocol import load_merged
from layergeom.stats.sample import PointSample
from layergeom.stats.scatter import UnitSum
from layergeom.stream.job import stream_shard

log = logging.getLogger("layergeom")

ALL_TOKENS = "all_tokens"  # standardized_method: exact, over every selected token (pass 2 over the store)
ON_SAMPLE = "sample"  # fused mode: over the dimensions.sample tokens, with the exact layer mean and scale

Path = str | os.PathLike


def write_standardized(
    states: Path, tokens: Path, standardize: Path, selection: dict, shard: str, block_tokens: int | None, out: Path
) -> None:
    """Pass 2 over token shard ``k-of-n``: unit-vector sums of the standardized states."""
    factors = np.load(standardize)
    stream_shard(states, tokens, out, shard, lambda table: standardized_feeds(table, selection, factors), block_tokens)


def sample_cosine(parts: Sequence[Path], layer: int, factors: np.ndarray) -> float:
    """Fused mode: the mean cosine of one layer's standardized sample."""
    sample = load_merged(parts, layer, SAMPLE, PointSample).finalize()
    units = UnitSum(sample.shape[1], *factors)
    units.update(sample, np.arange(len(sample)))
    return units.finalize()


def standardized(passes: Sequence[Path], samples: Sequence[Path], factors: np.ndarray) -> pl.DataFrame:
    """``mean_cos_standardized`` and its method per stored layer: merged pass-2 shards, or with none (fused mode)
    the sample that came with the stream partials."""
    n = len(factors)
    if passes:
        values = [load_merged(passes, i, STANDARDIZED, UnitSum).finalize() for i in tracked(range(n), n, "layers")]
    else:
        values = [sample_cosine(samples, i, factors[i]) for i in tracked(range(n), n, "layers")]
    return pl.DataFrame({"mean_cos_standardized": values, "standardized_method": ALL_TOKENS if passes else ON_SAMPLE})


def check_top_k(top_k: int, d: int, where: str) -> None:
    """The named top dimensions must exist."""
    if top_k > d:
        raise ValueError(f"dimensions.top_k = {top_k} exceeds the hidden size d = {d} of {where}")


def top_table(axis: pl.DataFrame, measures: pl.DataFrame) -> pl.DataFrame:
    """The long table: per layer the ranked top dimensions, their contribution and share of the mean cosine."""
    ranked = measures.select("top_dims", "top_contributions", "mean_cos").with_columns(
        rank=pl.int_ranges(1, pl.col("top_dims").list.len() + 1)
    )
    long = pl.concat([axis, ranked], how="horizontal").explode("top_dims", "top_contributions", "rank")
    return long.select(
        "layer",
        "layer_name",
        "relative_depth",
        pl.col("rank").cast(pl.Int64),
        pl.col("top_dims").alias("dim"),
        pl.col("top_contributions").alias("contribution"),
        (pl.col("top_contributions") / pl.col("mean_cos")).alias("share"),
    )


def layer_table(
    axis: pl.DataFrame, measures: pl.DataFrame, cosines: pl.DataFrame, selection: dict, top_k: int
) -> pl.DataFrame:
    """One row per stored layer: the layer axis, every measure, the top_k dimensions and their shares."""
    top = measures.select(
        pl.col("top_dims").list.head(top_k),
        (pl.col("top_contributions").list.head(top_k) / pl.col("mean_cos")).alias("top_dim_shares"),
    )
    values = measures.select("n_tokens", "mean_cos", "top1_share", "top3_share", "top10_share")
    return pl.concat([axis, values, top, cosines, measures.select("isoscore")], how="horizontal").with_columns(
        pl.lit(selection["include_special"]).alias("include_special"),
        pl.lit(selection["exclude_first_position"]).alias("exclude_first_position"),
    )


def write_tables(
    states: Path,
    layers: Path,
    standardize: Path,
    passes: Sequence[Path],
    samples: Sequence[Path],
    selection: dict,
    top_k: int,
    out: dict[str, Path],
) -> pl.DataFrame:
    """Join pass 1 and the standardized cosine into ``out['table']``, and the top dimensions into ``out['top']``."""
    array = open_hidden(states)
    factors = np.load(standardize)
    check_top_k(top_k, factors.shape[-1], str(states))
    axis, measures = layer_axis(array), pl.read_parquet(layers).sort("layer")
    table = layer_table(axis, measures, standardized(passes, samples, factors), selection, top_k)
    log.info("\n%s", table.select("layer", "mean_cos", "top3_share", "mean_cos_standardized", "isoscore"))
    write_parquet(table, out["table"])
    write_parquet(top_table(axis, measures), out["top"])
    return table
