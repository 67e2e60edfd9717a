"""The norm-variance merge: the shards' per-type moments into token_types, layers, top_q and type_pca tables."""

from __future__ import annotations

import logging

from layergeom.analyses.norm_variance.metrics import write_tables
from layergeom.analyses.spec import MergeJob

log = logging.getLogger("layergeom")


def merge(job: MergeJob) -> None:
    """Merge the moments of every shard and write the four tables."""
    tables = write_tables(job.header, job.tokens, list(job.parts), dict(job.settings), job.outputs)
    log.info("%d type rows, %d layer rows", tables.types.height, tables.layers.height)
