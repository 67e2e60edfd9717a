"""Verify every chunk of every store and its token table (rule verify)."""

from layergeom.io.integrity import verify_pairs
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    verify_pairs(list(snakemake.input.states), list(snakemake.input.tokens))  # noqa: F821
