"""Merge the stream shards' moments into token_types, layers and top_q tables (rule norm_variance_merge)."""

from layergeom.analyses.norm_variance.metrics import write_tables
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    tables = write_tables(sm.input.states, sm.input.tokens, list(sm.input.parts), sm.params.settings, sm.output)
    log.info("%d type rows, %d layer rows", tables.types.height, tables.layers.height)
