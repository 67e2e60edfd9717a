"""The accumulator protocol every streamed statistic implements, and how partial accumulators are stored.

An accumulator is created empty for one layer of dimension d, takes blocks of that layer with
``update(values, rows)``, folds another one in with ``merge(other)`` (associative, order-free; both
mutate ``self`` in place and return None), turns into arrays with ``state()`` and back with
``from_state``, and gives its result with ``finalize()``.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from layergeom.io.atomic import atomic_output
from layergeom.io.shards import SHARD_PATTERN

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


SLOT = "__slot__"
#: what reading a damaged .npz raises (a truncated or overwritten file, a bad CRC, a broken header)
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


class PartialError(ValueError):
    """A partial accumulator file that cannot be read, or that does not belong where it lies."""


@dataclass(frozen=True)
class Slot:
    """What a partial covers: the stored layer (position), the token shard ``k-of-n`` and its token range
    [start, stop), and the store it was computed from (``io.store.store_id``)."""

    layer: int
    shard: str
    start: int
    stop: int
    store: str


def rebuild_hint(folder: Path) -> str:
    """What to do about a bad partial: remove its shard folder; the next run makes it again."""
    return f"remove {folder} and run the workflow again (its stream or fused_extract job rebuilds it)"


def part_path(folder: str | os.PathLike, layer: int) -> Path:
    """File of one layer's partial accumulators inside a shard folder."""
    return Path(folder) / f"layer_{layer:03d}.npz"


def save(path: str | os.PathLike, accumulators: Mapping[str, Accumulator], slot: Slot | None = None) -> None:
    """Write named accumulators, and the slot they cover, to one uncompressed ``.npz`` file atomically."""
    arrays = {} if slot is None else {SLOT: np.array(json.dumps(asdict(slot)))}
    for name, acc in accumulators.items():
        arrays[f"{name}/kind"] = np.array(type(acc).__name__)
        for key, value in acc.state().items():
            arrays[f"{name}/{key}"] = np.asarray(value)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


@contextmanager
def background_saves(workers: int = 2) -> Iterator[Callable[..., None]]:
    """A :func:`save` that writes in ``workers`` background threads (file writes and checksums release the GIL), so
    partials are written while the caller goes on; on leaving, every save has ended and the first error is raised."""
    with ThreadPoolExecutor(workers) as pool:
        pending: list[Future] = []
        yield lambda *args: pending.append(pool.submit(save, *args))
        for future in pending:
            future.result()


def kind_of(path: str | os.PathLike, name: str) -> str:
    """The class name of the accumulator ``name`` saved in ``path``."""
    with np.load(path) as data:
        if f"{name}/kind" not in data.files:
            raise KeyError(f"{path}: no accumulator '{name}'")
        return str(data[f"{name}/kind"])


def read_slot(path: str | os.PathLike) -> Slot | None:
    """The slot a partial covers (None for a file saved without one); a damaged file is a PartialError."""
    try:
        with np.load(path) as data:
            return Slot(**json.loads(str(data[SLOT]))) if SLOT in data.files else None
    except FileNotFoundError:
        raise PartialError(f"{path}: partial missing; {rebuild_hint(Path(path).parent)}") from None
    except DAMAGED as err:
        raise PartialError(f"{path}: damaged partial ({err}); {rebuild_hint(Path(path).parent)}") from err


def check_slots(folders: Sequence[str | os.PathLike], layer: int, store: str | None = None) -> None:
    """Every folder's partial of ``layer`` readable, of that layer and of its folder's shard, all of one store
    (``store`` when given), and their token ranges one after another; else a PartialError naming the file."""
    slots = []
    for folder in map(Path, folders):
        path = part_path(folder, layer)
        slot = read_slot(path)
        if slot is None:
            continue
        where = f"{path} holds layer {slot.layer} of shard {slot.shard}"
        if slot.layer != layer or (re.fullmatch(SHARD_PATTERN, folder.name) and slot.shard != folder.name):
            raise PartialError(f"{where}, not layer {layer} of shard {folder.name}; {rebuild_hint(folder)}")
        if store is not None and slot.store != store:
            raise PartialError(f"{where} of another store ({slot.store}, not {store}); {rebuild_hint(folder)}")
        slots.append((slot, folder))
    if len({slot.store for slot, _ in slots}) > 1:
        raise PartialError(
            f"partials of layer {layer} from different stores: "
            + ", ".join(f"{part_path(f, layer)} ({s.store})" for s, f in slots)
        )
    ranges = sorted((s.start, s.stop, f) for s, f in slots)
    for (_, stop, _), (start, _, folder) in zip(ranges, ranges[1:]):
        if start != stop:
            raise PartialError(
                f"{part_path(folder, layer)} starts at token {start} where the shard before it ends at {stop}; "
                f"{rebuild_hint(folder)}"
            )


def load(path: str | os.PathLike, name: str, kind: type[A]) -> A:
    """Read the accumulator ``name``, of class ``kind``, from a file written by :func:`save`."""
    try:
        return _load(path, name, kind)
    except (KeyError, PartialError):
        raise
    except DAMAGED as err:
        raise PartialError(f"{path}: damaged partial ({err}); {rebuild_hint(Path(path).parent)}") from err


def _load(path: str | os.PathLike, name: str, kind: type[A]) -> A:
    """:func:`load` without the naming of damaged files."""
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
    check_slots(folders, layer)
    return merged(load(part_path(folder, layer), name, kind) for folder in folders)
