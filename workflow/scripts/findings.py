"""Claims of the papers judged on the tables: results/findings.md, .csv, report landing page (rule findings)."""

from layergeom.findings.collect import all_findings
from layergeom.findings.page import write_pages
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    inputs = {name: list(sm.input[name]) for name in (*sm.params.table_keys, "drift")}
    findings = all_findings(inputs, sm.params.table_keys, sm.params.tokens)
    write_pages(findings, sm.params.intro, sm.output)
