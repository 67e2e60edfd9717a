"""Merge the posctx shards: pos and ctx per layer to components.zarr, statistics to layers.parquet."""

from layergeom.analyses.posctx.components import run_merge
from layergeom.analyses.posctx.metrics import Settings
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_merge(
        sm.input.states,
        sm.input.tokens,
        list(sm.input.parts),
        sm.output.components,
        sm.output.table,
        settings=Settings(**sm.params.settings),
        **sm.params.selection,
    )
