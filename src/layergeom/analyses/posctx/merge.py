"""The posctx merge: pos and ctx per layer to components.zarr, their statistics to layers.parquet."""

from __future__ import annotations

from layergeom.analyses.posctx.components import run_merge
from layergeom.analyses.posctx.metrics import Settings
from layergeom.analyses.spec import MergeJob


def merge(job: MergeJob) -> None:
    """Merge the shards' sums and scatters of the grid and write the components and the table."""
    run_merge(
        job.header,
        job.tokens,
        list(job.parts),
        job.outputs["components"],
        job.outputs["table"],
        settings=Settings(**job.settings),
        **job.selection,
    )
