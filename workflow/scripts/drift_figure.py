"""Figure of the drift experiment (rule drift_figure)."""

import polars as pl

from layergeom.analyses.dynamics.plots import drift_figure
from layergeom.joblog import job_logging
from layergeom.plotting import save

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    save(drift_figure(pl.read_parquet(sm.input.table)), sm.output.figure)
