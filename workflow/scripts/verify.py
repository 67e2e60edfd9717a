"""Verify every chunk of one store and its token table (rule verify_store)."""

from pathlib import Path

from layergeom.io.integrity import verify_pair
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    Path(sm.output[0]).write_text(verify_pair(sm.input.states, sm.input.tokens) + "\n")
