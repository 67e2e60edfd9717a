"""One per-layer measure of every checkpoint of a model against training step (rule training_figure)."""

import polars as pl

from layergeom.analyses.dynamics.plots import over_training
from layergeom.joblog import job_logging
from layergeom.plotting import save

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    wc = sm.wildcards
    tables = [(step, pl.read_parquet(path).filter(**sm.params.where)) for step, path in zip(sm.params.steps, sm.input.tables)]
    tokens = sm.params.tokens
    title = f"{wc.family} on {wc.corpus}: {wc.measure} over training" + (f" ({tokens})" if tokens else "")
    save(over_training(tables, sm.params.columns, title), sm.output.figure)
