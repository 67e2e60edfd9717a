"""Per-layer norms of one store from its stream shards (rule summary)."""

from layergeom.analyses.summary.metrics import write_table
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    write_table(snakemake.input.states, list(snakemake.input.parts), snakemake.output.table)  # noqa: F821
