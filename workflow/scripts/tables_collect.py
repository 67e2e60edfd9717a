"""Stack every model's layer table of one analysis on one corpus (rule table)."""

from layergeom.joblog import job_logging
from layergeom.io.tables import stack, write_tables

with job_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    frame = stack(list(sm.input.tables), sm.params.models, sm.wildcards.corpus)
    spec = sm.params.spec
    note = f"{spec['what']}. Tokens: {spec['tokens']}." if spec["tokens"] else f"{spec['what']}."
    title = f"{sm.wildcards.analysis} on {sm.wildcards.corpus}: {', '.join(sm.params.models)}"
    write_tables(frame, sm.output.csv, sm.output.md, sm.output.html, title, note)
    log.info("%d rows, %d columns from %d models", frame.height, frame.width, len(sm.params.models))
