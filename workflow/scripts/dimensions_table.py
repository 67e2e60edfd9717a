"""Join pass 1 and the standardized cosine into the layer table, and write the top dimensions (rule
dimensions_table)."""

from layergeom.analyses.dimensions.table import write_tables
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_tables(
        sm.input.states,
        sm.input.layers,
        sm.input.standardize,
        list(sm.input.standardized),
        list(sm.input.samples),
        sm.params.selection,
        sm.params.top_k,
        dict(sm.output),
    )
