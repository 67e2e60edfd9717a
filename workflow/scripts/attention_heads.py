"""Per-head self-attention statistics of one model on one corpus's stored sequences (rule attention)."""

from layergeom.analyses.attention.heads import write_heads
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_heads(
        sm.params.model,
        sm.params.settings,
        sm.params.selection,
        sm.wildcards.model,
        sm.input.tokens,
        sm.output.table,
        sm.threads,
    )
