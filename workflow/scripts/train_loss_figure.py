"""Loss curve of one training run (rule train_loss_figure)."""

import polars as pl

from layergeom.analyses.dynamics.plots import loss_figure
from layergeom.joblog import job_logging
from layergeom.plotting import save

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    save(loss_figure(pl.read_parquet(sm.input.loss), sm.wildcards.run), sm.output.figure)
