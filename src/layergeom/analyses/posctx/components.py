"""Position/context decomposition of a contexts-mode store from the merged stream shards.

The merge folds the shards layer by layer, writes pos and ctx to ``components.zarr`` (with dimension
names and coordinates, so ``xarray.open_zarr`` reads it) and one row of statistics per layer to ``layers.parquet``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import polars as pl
import zarr

from layergeom.analyses.posctx.accumulate import SUMS, Decomposition, PosCtxSums, decompose
from layergeom.analyses.posctx.design import grid_design
from layergeom.analyses.posctx.metrics import Settings, layer_metrics, topic_codes
from layergeom.io.atomic import atomic_output, write_parquet
from layergeom.io.integrity import checksummed, read_array
from layergeom.io.store import layer_axis, layer_names, open_hidden, read_tokens, stored_layers, write_layer_coords
from layergeom.joblog import tracked
from layergeom.stats.protocol import load_merged
from layergeom.stream.feeds import load_scatter

log = logging.getLogger(__name__)

_STORE_ATTRS = (
    "model",
    "model_source",
    "revision",
    "init",
    "kind",
    "corpus",
    "n_layers",
    "layers",
    "d_model",
    "last_layer_after_final_norm",
    "residual_before_final_norm",
    "sequence_length",
    "config_hash",
)


def per_layer_array(group: zarr.Group, name: str, shape: tuple, dims: tuple, coordinates: str) -> zarr.Array:
    """A float64 array, one chunk per layer, named dimensions, ``layer_name`` + ``coordinates`` as coordinates."""
    array = group.create_array(
        name,
        shape=shape,
        chunks=(1, *shape[1:]),
        dtype=np.float64,
        fill_value=np.nan,
        compressors=checksummed(),
        dimension_names=dims,
    )
    array.attrs["coordinates"] = f"layer_name {coordinates}".strip()
    return array


def merge_layer(parts: Sequence[str | os.PathLike], layer: int, mask: np.ndarray) -> Decomposition:
    """Fold the shards' sums and scatter of one layer and decompose it."""
    return decompose(load_merged(parts, layer, SUMS, PosCtxSums), load_scatter(parts, layer, mask))


def run_merge(
    states_path: str | os.PathLike,
    tokens_path: str | os.PathLike,
    part_paths: Sequence[str | os.PathLike],
    components_path: str | os.PathLike,
    table_path: str | os.PathLike,
    include_special: bool,
    exclude_first_position: bool,
    settings: Settings,
) -> pl.DataFrame:
    """Merge shards layer by layer; write components.zarr and layers.parquet; return the table."""
    array = open_hidden(states_path)
    names, layers = layer_names(array), stored_layers(array).tolist()
    design = grid_design(read_tokens(tokens_path, array), include_special, exclude_first_position)
    n_layers, d = array.shape[0], array.shape[2]
    n_ctx, n_pos = design.shape
    codes, _ = topic_codes(design.topics)
    rows = []
    attrs = {key: array.attrs.get(key) for key in _STORE_ATTRS}
    attrs.update(
        layer_names=names,
        layers=layers,
        include_special=include_special,
        exclude_first_position=exclude_first_position,
        dropped_contexts=design.dropped_contexts,
    )
    with atomic_output(components_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        group.attrs.update(attrs)
        pos_arr = per_layer_array(group, "pos", (n_layers, n_pos, d), ("layer", "position", "d"), "positions")
        ctx_arr = per_layer_array(group, "ctx", (n_layers, n_ctx, d), ("layer", "context", "d"), "context_ids topic")
        mean_arr = per_layer_array(group, "mean", (n_layers, d), ("layer", "d"), "")
        write_layer_coords(group, names, layers)
        group.create_array("positions", data=design.positions, compressors=checksummed(), dimension_names=("position",))
        group.create_array(
            "context_ids", data=design.context_ids, compressors=checksummed(), dimension_names=("context",)
        )
        topic = group.create_array(  # "" = no topic
            "topic", shape=(n_ctx,), dtype=str, compressors=checksummed(), dimension_names=("context",)
        )
        topic[:] = np.array([t or "" for t in design.topics], dtype=object)
        for position, layer in tracked(enumerate(layers), n_layers, "layers"):
            dec = merge_layer(part_paths, position, design.mask)
            pos_arr[position], ctx_arr[position], mean_arr[position] = dec.pos, dec.ctx, dec.mu
            row = {"layer": layer, "n_contexts": n_ctx, "n_positions": n_pos}
            row.update(layer_metrics(dec, codes, settings))
            rows.append(row)
            shares = (row["pos_share"], row["ctx_share"], row["resid_share"])
            log.info("layer %d: shares pos %.3f ctx %.3f resid %.3f", layer, *shares)
    table = (
        layer_axis(array)
        .join(pl.DataFrame(rows, infer_schema_length=None), on="layer")
        .with_columns(pl.lit(attrs["model"]).alias("model"), pl.lit(attrs["corpus"]).alias("corpus"))
    )
    write_parquet(table, table_path)
    return table


def read_components(path: str | os.PathLike) -> dict:
    """pos, ctx (all layers), positions, context ids, topics and attrs of a components store."""
    group = zarr.open_group(str(path), mode="r", zarr_format=3)
    out = {name: read_array(group, name, path) for name in ("pos", "ctx", "mean", "positions", "context_ids")}
    out["topics"] = [t or None for t in read_array(group, "topic", path).tolist()]
    out["attrs"] = dict(group.attrs)
    return out
