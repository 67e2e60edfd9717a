"""The posctx table's quantities over relative depth for every model on one corpus."""

import polars as pl

from layergeom import posctx_plots as plots
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    tables = {model: pl.read_parquet(path) for model, path in zip(sm.params.models, sm.input.tables)}
    plots.save(plots.layers_overview(tables, sm.wildcards.corpus), sm.output.figure)
