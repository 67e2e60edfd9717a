"""One figure rule of a registered analysis, per (model, corpus) pair or per corpus (rule <analysis>_<key>)."""

from layergeom.analyses.jobs import run_figures
from layergeom.analyses.spec import FigureJob
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    # a per-corpus rule's tables are a list even for one model; a per-pair rule's inputs are single files
    inputs = {name: [f] if name == "tables" and isinstance(f, str) else f for name, f in sm.input.items()}
    job = FigureJob(inputs, dict(sm.output), dict(sm.wildcards.items()), sm.params.models, sm.params.facts)
    run_figures(sm.params.analysis, sm.params.key, sm.params.per, job)
