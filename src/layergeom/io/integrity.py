"""Verifiable Zarr outputs: every chunk carries a crc32c checksum and a missing float chunk reads as NaN.

``verify_store`` checks a whole store (every chunk present, its checksum right, float values finite);
``python -m layergeom.io.integrity STORE...`` runs it from the shell.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator

import numpy as np
import polars as pl
import zarr
from zarr.core.sync import sync

log = logging.getLogger(__name__)


class StoreError(ValueError):
    """A store that is incomplete or damaged: a chunk missing, unreadable or with a wrong checksum."""


def checksummed(compressor: zarr.abc.codec.BytesBytesCodec | None = None) -> list:
    """Bytes-to-bytes codecs of every array we write: the compressor (if any), then a crc32c checksum."""
    return [c for c in (compressor, zarr.codecs.Crc32cCodec()) if c is not None]


def store_root(array: zarr.Array) -> str:
    """The folder (or URL) of the store holding ``array``."""
    return str(getattr(array.store, "root", array.store))


def storage_shape(array: zarr.Array) -> tuple[int, ...]:
    """Shape of one stored object: the shard if the array is sharded, else the chunk."""
    return tuple(getattr(array, "shards", None) or array.chunks)


def chunk_name(array: zarr.Array, index: tuple[int, ...]) -> str:
    """Path of the stored object with grid ``index`` inside the store (``hidden/c/1/3/0``)."""
    return f"{array.path}/{array.metadata.encode_chunk_key(index)}"


def chunks_of(array: zarr.Array, layer: int, start: int, stop: int) -> str:
    """The stored objects holding tokens [start, stop) of ``layer`` of a (layer, token, d) array."""
    step = storage_shape(array)[1]
    first, last = start // step, max(start, stop - 1) // step
    names = [chunk_name(array, (layer, first, 0)), chunk_name(array, (layer, last, 0))]
    return names[0] if first == last else f"{names[0]} .. {names[1]}"


def read_error(array: zarr.Array, layer: int, start: int, stop: int, err: Exception) -> StoreError:
    """The error of an unreadable block, naming the store, layer, tokens and chunk."""
    return StoreError(
        f"{store_root(array)}: layer {layer}, tokens {start}..{stop} cannot be read from chunk "
        f"{chunks_of(array, layer, start, stop)} ({type(err).__name__}: {err}); the store is damaged: "
        "delete it and run again to rebuild it"
    )


def grid(array: zarr.Array) -> Iterator[tuple[int, ...]]:
    """Grid indices of every stored object of ``array``."""
    shape = storage_shape(array)
    return itertools.product(*(range(math.ceil(n / c)) for n, c in zip(array.shape, shape, strict=True)))


def verify_array(array: zarr.Array) -> list[str]:
    """Problems of one array: missing chunks, unreadable chunks (checksum, truncation), non-finite floats."""
    problems = []
    shape, floats = storage_shape(array), np.issubdtype(array.dtype, np.floating)
    for index in grid(array):
        name = chunk_name(array, index)
        if not sync(array.store.exists(name)):
            problems.append(f"missing chunk {name}")
            continue
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, shape, strict=True))
        try:
            values = array[region]
        except Exception as err:  # codecs raise ValueError, reshape errors, ...: all mean a damaged chunk
            problems.append(f"unreadable chunk {name}: {type(err).__name__}: {err}")
            continue
        if floats and not np.isfinite(values).all():
            problems.append(f"non-finite values in chunk {name} (a missing inner chunk reads as NaN)")
    return problems


def read_array(group: zarr.Group, name: str, where: str | os.PathLike) -> np.ndarray:
    """All of array ``name`` of a store; a damaged or missing chunk is a StoreError naming it."""
    array = group[name]
    try:
        values = np.asarray(array[...])
    except Exception as err:  # codecs raise ValueError, reshape errors, ...: name the chunks
        raise StoreError(f"{where}: {'; '.join(verify_array(array)) or err}") from err
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        raise StoreError(f"{where}: {'; '.join(verify_array(array)) or f'non-finite values in {name}'}")
    return values


def verify_store(path: str | os.PathLike) -> int:
    """Check every chunk of every array of a store; raise StoreError listing the problems, else count the chunks."""
    group = zarr.open_group(str(path), mode="r", zarr_format=3)
    problems, checked = [], 0
    with warnings.catch_warnings():  # Snakemake's .snakemake_timestamp in a directory output is no Zarr object
        warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
        arrays = sorted(group.arrays())
    for _, array in arrays:
        problems += verify_array(array)
        checked += sum(1 for _ in grid(array))
    if group.attrs.get("complete") is False:
        problems.append("the store is marked incomplete (complete: false)")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise StoreError(f"{path}: {len(problems)} problems in {checked} chunks:\n  {shown}{more}")
    return checked


def verify_pair(states: str | os.PathLike, tokens: str | os.PathLike) -> str:
    """Verify a store and its token table (readable, one row per stored token); return a one-line summary."""
    checked = verify_store(states)
    n_tokens = zarr.open_group(str(states), mode="r", zarr_format=3)["hidden"].shape[1]
    try:
        rows = pl.read_parquet(tokens).height
    except Exception as err:  # polars raises ComputeError, OSError, ...: all mean a damaged file
        raise StoreError(f"{tokens}: cannot be read ({type(err).__name__}: {err}); delete it and run again") from err
    if rows != n_tokens:
        raise StoreError(f"{tokens} has {rows} rows but {states} stores {n_tokens} tokens; delete both and run again")
    return f"{states}: ok, {checked} chunks verified; {tokens}: ok, {rows} rows"


def verify_pairs(states: list[str], tokens: list[str]) -> None:
    """Verify every store and token table, logging one line each; raise one StoreError listing every damaged one."""
    damaged = []
    for store, table in zip(states, tokens, strict=True):
        try:
            log.info(verify_pair(store, table))
        except StoreError as err:
            log.error("%s", err)
            damaged.append(str(err))
    if damaged:
        raise StoreError(f"{len(damaged)} of {len(states)} stores are damaged:\n" + "\n".join(damaged))


def main(paths: list[str]) -> int:
    """Verify each store; print one line per store; exit status 1 if any is damaged."""
    status = 0
    for path in paths:
        try:
            print(f"{path}: ok, {verify_store(path)} chunks verified")
        except (StoreError, FileNotFoundError) as err:
            print(err, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
