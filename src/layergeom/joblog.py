"""Logging for workflow jobs: everything a job prints goes to its rule's log file."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator


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
