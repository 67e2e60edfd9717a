"""Every registered analysis' claims judged on its tables: findings.csv, .md and the report's landing page."""

from layergeom.analyses.jobs import run_findings
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    inputs = {name: list(sm.input[name]) for name in (*sm.params.table_keys, "drift")}
    run_findings(inputs, sm.params.table_keys, sm.params.facts, sm.params.intro, sm.output)
