"""Merge pass 1 of the stream shards into the spectrum measures and each layer's mean (rule anisotropy_spectrum)."""

from layergeom.analyses.anisotropy.metrics import write_spectrum
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    write_spectrum(
        sm.input.states, sm.input.tokens, list(sm.input.parts), sm.params.selection, sm.output.spectrum, sm.output.means
    )
