"""Fused mode: ID and centered cosine of the sample collected in extraction (rule anisotropy_id_fused)."""

from layergeom.analyses.anisotropy.metrics import write_id_fused
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_id_fused(list(sm.input.parts), sm.input.means, sm.params.settings, sm.output.table)
