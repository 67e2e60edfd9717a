"""Intrinsic dimension of every layer on one bounded token subsample (rule anisotropy_id)."""

from layergeom.analyses.anisotropy.metrics import write_id
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_id(
        sm.input.states,
        sm.input.tokens,
        sm.params.selection,
        sm.params.settings,
        sm.params.block_tokens,
        sm.output.table,
    )
