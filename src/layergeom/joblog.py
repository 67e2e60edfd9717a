"""Logging for workflow jobs: everything a job prints goes to its rule's log file."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def job_logging(path: str | None) -> Iterator[logging.Logger]:
    """Send logging, warnings, stdout and stderr to ``path`` for the duration of a job."""
    stream = open(path, "w", buffering=1) if path else sys.stderr
    old = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream,
        force=True,
    )
    logging.captureWarnings(True)
    try:
        yield logging.getLogger("layergeom")
    except BaseException:
        logging.getLogger("layergeom").exception("job failed")
        raise
    finally:
        sys.stdout, sys.stderr = old
        if path:
            stream.close()


class Progress:
    """Logs items done, rate and time left at most every ``every`` seconds."""

    def __init__(self, total: int, unit: str = "tokens", every: float = 10.0) -> None:
        self.total, self.unit, self.every = total, unit, every
        self.t0 = self.last = time.monotonic()
        self.done = 0

    def update(self, n: int, force: bool = False, note: str = "") -> None:
        """Count ``n`` more items and log the rate and time left (and ``note``) if it is time."""
        self.done += n
        now = time.monotonic()
        if force or now - self.last >= self.every:
            rate = self.done / max(now - self.t0, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            logging.getLogger("layergeom").info(
                "%d / %d %s (%.1f%%), %s %s/s, %.0f s left%s",
                self.done,
                self.total,
                self.unit,
                100 * self.done / max(self.total, 1),
                f"{rate:.0f}" if rate >= 10 else f"{rate:.2f}",
                self.unit,
                left,
                f"; {note}" if note else "",
            )
            self.last = now


def tracked(items: Iterable[T], total: int, unit: str, every: float = 10.0) -> Iterator[T]:
    """Yield ``items``, logging progress (rate, time left) as each is done and a last line at the end."""
    progress = Progress(total, unit, every)
    for item in items:
        yield item
        progress.update(1)
    progress.update(0, force=True)
