"""Position/context decomposition of a contexts-mode store: sharded streaming pass, then merge and table.

A shard job streams its token range of every layer into LayerSums saved in a partial Zarr store;
the merge job folds the shards layer by layer, writes pos and ctx to ``components.zarr`` and one
row of statistics per layer to ``layers.parquet``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import polars as pl
import zarr

from layergeom.atomic import atomic_output, write_parquet
from layergeom.posctx_accum import Decomposition, LayerSums, decompose
from layergeom.posctx_design import Design, grid_design
from layergeom.posctx_metrics import Settings, layer_metrics, topic_codes
from layergeom.store import iter_layer, layer_names, open_hidden, read_tokens

log = logging.getLogger(__name__)

_SUM_FIELDS = ("mean", "scatter", "pos_sum", "ctx_sum", "pos_count", "ctx_count")
_STORE_ATTRS = (
    "model",
    "model_source",
    "revision",
    "init",
    "kind",
    "corpus",
    "n_layers",
    "d_model",
    "last_layer_after_final_norm",
    "residual_before_final_norm",
    "sequence_length",
    "config_hash",
)


def shard_range(n_tokens: int, chunk: int, shard: int, n_shards: int) -> tuple[int, int]:
    """Token range [start, stop) of shard ``shard`` of ``n_shards``, cut at chunk boundaries."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not in 0..{n_shards - 1}")
    n_chunks = -(-n_tokens // chunk)
    edges = np.linspace(0, n_chunks, n_shards + 1).round().astype(np.int64) * chunk
    return int(min(edges[shard], n_tokens)), int(min(edges[shard + 1], n_tokens))


def load_design(tokens_path: str | os.PathLike, include_special: bool, exclude_first_position: bool) -> Design:
    """The grid design of a stored token table under the chosen selection."""
    return grid_design(read_tokens(tokens_path), include_special, exclude_first_position)


def accumulate_layer(
    array: zarr.Array, layer: int, design: Design, mask: np.ndarray, block_tokens: int | None = None
) -> LayerSums:
    """Stream the rows of one layer selected by ``mask`` (a subset of the grid) into LayerSums."""
    n_ctx, n_pos = design.shape
    sums = LayerSums.empty(n_ctx, n_pos, array.shape[2])
    for block in iter_layer(array, layer, mask=mask, block_tokens=block_tokens):
        sums.update(block.values, design.ctx_index[block.rows], design.pos_index[block.rows])
    return sums


def run_shard(
    states_path: str | os.PathLike,
    tokens_path: str | os.PathLike,
    out_path: str | os.PathLike,
    shard: int,
    n_shards: int,
    include_special: bool,
    exclude_first_position: bool,
    block_tokens: int | None = None,
) -> None:
    """Write the partial sums of every layer over one token shard to the Zarr store ``out_path``."""
    array = open_hidden(states_path)
    design = load_design(tokens_path, include_special, exclude_first_position)
    if design.mask.size != array.shape[1]:
        raise ValueError(f"token table has {design.mask.size} rows, store has {array.shape[1]} tokens")
    start, stop = shard_range(array.shape[1], array.chunks[1], shard, n_shards)
    mask = design.mask.copy()
    mask[:start] = False
    mask[stop:] = False
    n_layers, d = array.shape[0], array.shape[2]
    n_ctx, n_pos = design.shape
    log.info("shard %d/%d: tokens %d..%d, grid %d contexts x %d positions", shard, n_shards, start, stop, n_ctx, n_pos)
    with atomic_output(out_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        group.attrs.update({"shard": shard, "n_shards": n_shards, "start": start, "stop": stop})
        shapes = {
            "n": ((n_layers,), np.int64),
            "mean": ((n_layers, d), np.float64),
            "scatter": ((n_layers, d, d), np.float64),
            "pos_sum": ((n_layers, n_pos, d), np.float64),
            "ctx_sum": ((n_layers, n_ctx, d), np.float64),
            "pos_count": ((n_layers, n_pos), np.int64),
            "ctx_count": ((n_layers, n_ctx), np.int64),
        }
        arrays = {
            name: group.create_array(name, shape=shape, chunks=(1, *shape[1:]), dtype=dtype, compressors=None)
            for name, (shape, dtype) in shapes.items()
        }
        for layer in range(n_layers):
            sums = accumulate_layer(array, layer, design, mask, block_tokens)
            arrays["n"][layer] = sums.n
            for name in _SUM_FIELDS:
                arrays[name][layer] = getattr(sums, name)
            log.info("layer %d/%d done", layer + 1, n_layers)


def read_part(group: zarr.Group, layer: int) -> LayerSums:
    """The LayerSums of one layer from an opened partial store."""
    fields = {name: np.asarray(group[name][layer]) for name in _SUM_FIELDS}
    return LayerSums(n=int(group["n"][layer]), **fields)


def merge_layer(parts: Sequence[zarr.Group], layer: int) -> Decomposition:
    """Fold the shards' sums of one layer and decompose it."""
    total = read_part(parts[0], layer)
    for part in parts[1:]:
        total.merge(read_part(part, layer))
    return decompose(total)


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
    names = layer_names(array)
    design = load_design(tokens_path, include_special, exclude_first_position)
    parts = [zarr.open_group(str(p), mode="r", zarr_format=3) for p in part_paths]
    shards = sorted(int(p.attrs["shard"]) for p in parts)
    if shards != list(range(len(parts))) or any(int(p.attrs["n_shards"]) != len(parts) for p in parts):
        raise ValueError(f"posctx merge: expected shards 0..{len(parts) - 1} of {len(parts)}, got {shards}")
    n_layers, d = array.shape[0], array.shape[2]
    n_ctx, n_pos = design.shape
    codes, _ = topic_codes(design.topics)
    rows = []
    attrs = {key: array.attrs.get(key) for key in _STORE_ATTRS}
    attrs.update(
        layer_names=names,
        include_special=include_special,
        exclude_first_position=exclude_first_position,
        dropped_contexts=design.dropped_contexts,
    )
    with atomic_output(components_path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        group.attrs.update(attrs)
        pos_arr = group.create_array("pos", shape=(n_layers, n_pos, d), chunks=(1, n_pos, d), dtype=np.float64)
        ctx_arr = group.create_array("ctx", shape=(n_layers, n_ctx, d), chunks=(1, n_ctx, d), dtype=np.float64)
        mean_arr = group.create_array("mean", shape=(n_layers, d), chunks=(1, d), dtype=np.float64)
        group.create_array("positions", data=design.positions)
        group.create_array("context_ids", data=design.context_ids)
        topic = group.create_array("topic", shape=(n_ctx,), dtype=str)  # "" = no topic
        topic[:] = np.array([t or "" for t in design.topics], dtype=object)
        for layer in range(n_layers):
            dec = merge_layer(parts, layer)
            pos_arr[layer], ctx_arr[layer], mean_arr[layer] = dec.pos, dec.ctx, dec.mu
            row = {"layer": layer, "layer_name": names[layer], "n_contexts": n_ctx, "n_positions": n_pos}
            row.update(layer_metrics(dec, codes, settings))
            rows.append(row)
            shares = (row["pos_share"], row["ctx_share"], row["resid_share"])
            log.info("layer %d: shares pos %.3f ctx %.3f resid %.3f", layer, *shares)
    table = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.lit(attrs["model"]).alias("model"), pl.lit(attrs["corpus"]).alias("corpus")
    )
    write_parquet(table, table_path)
    return table


def read_components(path: str | os.PathLike) -> dict:
    """pos, ctx (all layers), positions, context ids, topics and attrs of a components store."""
    group = zarr.open_group(str(path), mode="r", zarr_format=3)
    out = {name: np.asarray(group[name][...]) for name in ("pos", "ctx", "mean", "positions", "context_ids")}
    out["topics"] = [t or None for t in np.asarray(group["topic"][...]).tolist()]
    out["attrs"] = dict(group.attrs)
    return out
