"""The accumulator protocol every streamed statistic implements, and how partial accumulators are stored.

An accumulator is created empty for one layer of dimension d, takes blocks of that layer with
``update(values, rows)``, folds another one in with ``merge(other)`` (associative, order-free; both
mutate ``self`` in place and return None), turns into arrays with ``state()`` and back with
``from_state``, and gives its result with ``finalize()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from layergeom.io.atomic import atomic_output

A = TypeVar("A", bound="Accumulator")


@runtime_checkable
class Accumulator(Protocol):
    """Mergeable float64 statistic of one layer."""

    def update(self, values: np.ndarray, rows: np.ndarray) -> None:
        """Add a block: ``values`` (n, d) float64 and their token-table ``rows`` (n,)."""

    def merge(self, other: Any) -> None:
        """Fold another accumulator of the same kind and layer into this one."""

    def state(self) -> dict[str, np.ndarray]:
        """The arrays that :meth:`from_state` rebuilds the accumulator from."""

    def finalize(self) -> Any:
        """The accumulated result."""


def part_path(folder: str | os.PathLike, layer: int) -> Path:
    """File of one layer's partial accumulators inside a shard folder."""
    return Path(folder) / f"layer_{layer:03d}.npz"


def save(path: str | os.PathLike, accumulators: Mapping[str, Accumulator]) -> None:
    """Write named accumulators to one uncompressed ``.npz`` file atomically."""
    arrays = {}
    for name, acc in accumulators.items():
        arrays[f"{name}/kind"] = np.array(type(acc).__name__)
        for key, value in acc.state().items():
            arrays[f"{name}/{key}"] = np.asarray(value)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def kind_of(path: str | os.PathLike, name: str) -> str:
    """The class name of the accumulator ``name`` saved in ``path``."""
    with np.load(path) as data:
        if f"{name}/kind" not in data.files:
            raise KeyError(f"{path}: no accumulator '{name}'")
        return str(data[f"{name}/kind"])


def load(path: str | os.PathLike, name: str, kind: type[A]) -> A:
    """Read the accumulator ``name``, of class ``kind``, from a file written by :func:`save`."""
    with np.load(path) as data:
        if f"{name}/kind" not in data.files:
            raise KeyError(f"{path}: no accumulator '{name}'")
        prefix = f"{name}/"
        state = {
            key[len(prefix) :]: data[key] for key in data.files if key.startswith(prefix) and key != f"{name}/kind"
        }
        saved = str(data[f"{name}/kind"])
        if saved != kind.__name__:
            raise KeyError(f"{path}: accumulator '{name}' is a {saved}, not a {kind.__name__}")
        return kind.from_state(state)


def merged(accumulators: Iterable[A]) -> A:
    """Fold accumulators into the first one (which is changed) and return it."""
    accumulators = iter(accumulators)
    total = next(accumulators)
    for other in accumulators:
        total.merge(other)
    return total


def load_merged(folders: Sequence[str | os.PathLike], layer: int, name: str, kind: type[A]) -> A:
    """One layer's accumulator ``name`` merged over every shard folder, holding two at a time."""
    if not folders:
        raise ValueError("no shard folders to merge")
    return merged(load(part_path(folder, layer), name, kind) for folder in folders)
