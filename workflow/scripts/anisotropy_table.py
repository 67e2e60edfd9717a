"""Join the spectrum, centered cosine and intrinsic dimension into one row per layer (rule anisotropy_table)."""

from layergeom.analyses.anisotropy.metrics import write_table
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_table(
        sm.input.states, sm.input.spectrum, list(sm.input.centered), sm.input.id, sm.params.selection, sm.output.table
    )
