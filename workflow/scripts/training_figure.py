"""One per-layer measure of every checkpoint of a model against training step (rule training_figure)."""

from layergeom.analyses.dynamics.plots import training_figure
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    wc, tokens = sm.wildcards, sm.params.tokens
    title = f"{wc.family} on {wc.corpus}: {wc.measure} over training" + (f" ({tokens})" if tokens else "")
    training_figure(sm.params.steps, list(sm.input.tables), sm.params.where, sm.params.columns, title, sm.output.figure)
