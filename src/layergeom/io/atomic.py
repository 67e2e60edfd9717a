"""Atomic writes: produce an output under a temporary name, then rename it into place."""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOW_SPACE = 64 << 20  # bytes: below this, a failed write is reported as a probable full disk


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


def remove_stale(path: Path) -> None:
    """Delete the temporaries of ``path`` left by killed jobs (the Snakemake lock lets one job write an output)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp*"):
        remove(stale)


def explain(err: BaseException, path: Path) -> None:
    """Name the output being written in the error, and the free space when its disk is (nearly) full."""
    free = shutil.disk_usage(path.parent).free
    low = f"; only {free} bytes are free on its disk: free space and run again" if free < LOW_SPACE else ""
    err.add_note(f"while writing {path}{low}")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, f"tmp{os.getpid()}")
    remove_stale(path)
    try:
        yield tmp
    except Exception as err:
        explain(err, path)
        remove(tmp)
        raise
    except BaseException:
        remove(tmp)
        raise
    remove(path)
    os.replace(tmp, path)


def write_parquet(frame, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write a polars DataFrame to Parquet atomically (with key-value ``metadata`` in the file footer)."""
    with atomic_output(path) as tmp:
        frame.write_parquet(tmp, metadata=metadata)
