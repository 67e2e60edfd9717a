"""Untrained blocks fed inputs plus a growing shared drift (rule drift)."""

import torch

from layergeom.analyses.dynamics.drift import drift_table
from layergeom.io.atomic import write_parquet
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    torch.set_num_threads(max(1, sm.threads))
    table = drift_table(sm.params.settings)
    log.info("%d rows", table.height)
    write_parquet(table, sm.output.table)
