"""Fused mode: the token table and the header store of a pair, before any forward pass (rule fused_tokens)."""

from layergeom.extraction.fused import run_fused_tokens
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    run_fused_tokens(
        sm.params.spec,
        sm.wildcards.model,
        sm.wildcards.corpus,
        sm.input.documents,
        sm.input.sentences,
        sm.output.header,
        sm.output.tokens,
        sm.threads,
    )
