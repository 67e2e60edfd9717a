"""Atomic writes: produce an output under a temporary name, then rename it into place."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_sibling(path: str | os.PathLike, tag: str = "partial") -> Path:
    """Return a hidden temporary path in the same folder as ``path`` (same filesystem)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}")


def remove(path: str | os.PathLike) -> None:
    """Delete a file or folder if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, f"tmp{os.getpid()}")
    remove(tmp)
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    remove(path)
    os.replace(tmp, path)


def write_parquet(frame, path: str | os.PathLike) -> None:
    """Write a polars DataFrame to Parquet atomically."""
    with atomic_output(path) as tmp:
        frame.write_parquet(tmp)
