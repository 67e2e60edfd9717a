"""The anisotropy merge (pass 1): the shards' unit sums and scatters into the spectrum and the layer means that
the centered pass and the intrinsic-dimension job need."""

from __future__ import annotations

from layergeom.analyses.anisotropy.metrics import write_spectrum
from layergeom.analyses.spec import MergeJob


def merge(job: MergeJob) -> None:
    """Write the per-layer spectrum table and the layer means."""
    write_spectrum(
        job.header, job.tokens, list(job.parts), dict(job.selection), job.outputs["spectrum"], job.outputs["means"]
    )
