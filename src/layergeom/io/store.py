"""The hidden-state store: a Zarr v3 group with the array ``hidden`` (layers, tokens, d).

Writers and readers of ``results/hidden/{model}/{corpus}/states.zarr`` go through this module;
readers stream one layer in chunk-aligned blocks so memory depends on chunk size and d only.
Every chunk carries a crc32c checksum and ``hidden``'s fill value is NaN, so a damaged or missing chunk
is an error naming the store, layer and chunk (``io/integrity.py``), never data.
Arrays carry Zarr v3 ``dimension_names`` and the group holds coordinate arrays (``layer``,
``layer_name``, ``token``), so ``xarray.open_zarr`` reads a store as a Dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import polars as pl
import zarr

from layergeom.io.atomic import write_parquet
from layergeom.io.integrity import StoreError, checksummed, read_error

T = TypeVar("T")
ARRAY = "hidden"
DIMS = ("layer", "token", "d")
COORD_BLOCK = 1 << 20  # token rows per chunk of the ``token`` coordinate
COMPRESSORS = {
    "none": lambda: None,
    "zstd": lambda: zarr.codecs.ZstdCodec(level=3),
    "blosc": lambda: zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
}


def create_store(
    path: str | os.PathLike,
    n_layers: int,
    n_tokens: int,
    d: int,
    dtype: str,
    chunk_tokens: int,
    shard_tokens: int | None,
    attrs: dict,
    compression: str = "none",
) -> zarr.Array:
    """Create an empty store at ``path`` with one layer per chunk, chunked along tokens, and its coordinates."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    chunk = max(1, min(chunk_tokens, max(n_tokens, 1)))
    shards = None
    if shard_tokens:
        shard = max(chunk, (shard_tokens // chunk) * chunk)
        shards = (1, shard, d)
    array = group.create_array(
        ARRAY,
        shape=(n_layers, n_tokens, d),
        chunks=(1, chunk, d),
        shards=shards,
        dtype=dtype,
        fill_value=np.nan,
        compressors=checksummed(COMPRESSORS[compression]()),
        dimension_names=DIMS,
    )
    array.attrs.update(attrs)
    array.attrs["coordinates"] = "layer_name"
    group.attrs.update(attrs)
    names = attrs.get("layer_names") or [str(i) for i in range(n_layers)]
    write_layer_coords(group, names, attrs.get("layers"))
    token = group.create_array(
        "token",
        shape=(n_tokens,),
        chunks=(max(1, min(n_tokens, COORD_BLOCK)),),
        dtype=np.int64,
        compressors=checksummed(),
        dimension_names=("token",),
    )
    for start in range(0, n_tokens, COORD_BLOCK):
        token[start : start + COORD_BLOCK] = np.arange(start, min(start + COORD_BLOCK, n_tokens))
    return array


def write_layer_coords(group: zarr.Group, names: Sequence[str], indices: Sequence[int] | None = None) -> None:
    """Coordinate arrays of the ``layer`` dimension: ``layer`` (the model's index, default 0..) and ``layer_name``."""
    layer = np.arange(len(names)) if indices is None else np.asarray(indices)
    group.create_array("layer", data=layer.astype(np.int64), compressors=checksummed(), dimension_names=("layer",))
    layer_name = group.create_array(
        "layer_name", shape=(len(names),), dtype=str, compressors=checksummed(), dimension_names=("layer",)
    )
    layer_name[:] = np.array(list(names), dtype=object)


def open_hidden(path: str | os.PathLike, mode: str = "r") -> zarr.Array:
    """Open the ``hidden`` array of a store."""
    return zarr.open_group(str(path), mode=mode, zarr_format=3)[ARRAY]


#: key of the token table's Parquet metadata that names the store it belongs to (``store_id``)
TOKENS_STORE = "layergeom.store"


def write_tokens(table: pl.DataFrame, path: str | os.PathLike, attrs) -> None:
    """Write a token table atomically, marked with the ``store_id`` of the store (attributes) it describes."""
    write_parquet(table, path, {TOKENS_STORE: store_id(attrs)})


def read_tokens(path: str | os.PathLike, of: zarr.Array | None = None) -> pl.DataFrame:
    """Read the token table (row i describes column i of ``hidden``); with ``of``, refuse a table of another store."""
    if of is not None:
        mine, theirs = pl.read_parquet_metadata(path).get(TOKENS_STORE), store_id(of.attrs)
        if mine is not None and mine != theirs:
            raise StoreError(
                f"{path} is the token table of another store ({mine}) than the one read with it ({theirs}); "
                "rerun their extraction (both come from one job)"
            )
    return pl.read_parquet(path)


def write_block_size(array: zarr.Array) -> int:
    """Tokens per aligned write: the shard length if sharded, else the chunk length."""
    shards = getattr(array, "shards", None)
    return int(shards[1] if shards else array.chunks[1])


def block_step(array: zarr.Array, block_tokens: int | None) -> int:
    """Tokens per streamed block: ``block_tokens`` rounded down to whole chunks, at least one chunk."""
    chunk = int(array.chunks[1])
    return max(chunk, (int(block_tokens or chunk) // chunk) * chunk)


@dataclass(frozen=True)
class Block:
    """One chunk-aligned block of one layer: token range [start, stop) and its selected rows."""

    start: int
    stop: int
    rows: np.ndarray  # indices into the full token axis of the selected tokens
    values: np.ndarray  # (len(rows), d) float64


def iter_layer(
    array: zarr.Array,
    layer: int,
    mask: np.ndarray | None = None,
    block_tokens: int | None = None,
    dtype: type = np.float64,
) -> Iterator[Block]:
    """Stream one layer in chunk-aligned blocks, keeping only tokens where ``mask`` is true."""
    n_tokens = array.shape[1]
    step = block_step(array, block_tokens)
    for start in range(0, n_tokens, step):
        stop = min(start + step, n_tokens)
        keep = None if mask is None else np.flatnonzero(mask[start:stop])
        if keep is not None and keep.size == 0:
            continue
        try:
            values = np.asarray(array[layer, start:stop], dtype=dtype)
        except Exception as err:  # a bad checksum or a truncated chunk: name where
            raise read_error(array, layer, start, stop, err) from err
        rows = np.arange(start, stop)
        if keep is not None and keep.size < stop - start:
            values, rows = values[keep], rows[keep]
        yield Block(start, stop, rows, values)


def prefetched(blocks: Iterator[T]) -> Iterator[T]:
    """Read the next block in a background thread while the caller works on the current one (2 in memory)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, blocks, None)
        while (block := pending.result()) is not None:
            pending = pool.submit(next, blocks, None)
            yield block


def layer_names(array: zarr.Array) -> list[str]:
    """Layer names stored with the array (``embeddings``, ``block_1`` ...)."""
    names = array.attrs.get("layer_names")
    return list(names) if names else [str(i) for i in range(array.shape[0])]


def n_blocks(array: zarr.Array) -> int:
    """Number of transformer blocks of the model behind the store (stored layers are embeddings + blocks)."""
    return int(array.attrs.get("n_layers") or array.shape[0] - 1)


def relative_depth(layer, blocks: int):
    """Layer index over the number of blocks (0 = embeddings output, 1 = last block)."""
    return layer / max(blocks, 1)


def stored_layers(array: zarr.Array) -> np.ndarray:
    """The model's layer index of each stored layer (``extraction.layers``; all layers when not set)."""
    layers = array.attrs.get("layers")
    return np.asarray(layers, dtype=np.int64) if layers is not None else np.arange(array.shape[0])


def store_id(attrs) -> str:
    """A short identity of what a store (or fused header) was computed from: its config hash and fingerprint."""
    text = json.dumps([attrs.get("config_hash"), attrs.get("fingerprint")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def after_final_norm(layers, blocks: int, last_after_norm: bool) -> np.ndarray:
    """Per stored layer, whether it is taken after the model's final norm: only the model's last block, when it is
    stored and the model's last hidden state is normed (store attribute ``last_layer_after_final_norm``)."""
    layers = np.asarray(layers, dtype=np.int64)
    return (layers == blocks) & bool(last_after_norm)


def layer_axis(array: zarr.Array) -> pl.DataFrame:
    """The first columns of a layer table: ``layer`` (model index), ``layer_name``, ``relative_depth`` and
    ``after_final_norm``."""
    layers, blocks = stored_layers(array), n_blocks(array)
    normed = after_final_norm(layers, blocks, array.attrs.get("last_layer_after_final_norm", False))
    return pl.DataFrame(
        {
            "layer": layers,
            "layer_name": layer_names(array),
            "relative_depth": relative_depth(layers, blocks),
            "after_final_norm": normed,
        },
        schema={"layer": pl.Int64, "layer_name": pl.Utf8, "relative_depth": pl.Float64, "after_final_norm": pl.Boolean},
    )


def with_layer_axis(frame: pl.DataFrame, array: zarr.Array) -> pl.DataFrame:
    """A frame whose ``layer`` holds store positions, with the model's index there and the layer axis joined."""
    axis = layer_axis(array).rename({"layer": "model_layer"}).with_row_index("layer").cast({"layer": pl.Int64})
    joined = frame.join(axis, on="layer", how="left", maintain_order="left")
    return joined.with_columns(pl.col("model_layer").alias("layer")).drop("model_layer")
