"""Merge pass-1 shards into the spectrum measures and each layer's mean (rule anisotropy_spectrum)."""

import numpy as np

from layergeom.anisotropy import merge_moments
from layergeom.atomic import atomic_output, write_parquet
from layergeom.joblog import job_logging
from layergeom.store import open_hidden

with job_logging(snakemake.log[0]) as log:
    spectrum, means = merge_moments(list(snakemake.input.parts), open_hidden(snakemake.input.states).shape[0])
    log.info("%d layers merged from %d shards", spectrum.height, len(snakemake.input.parts))
    write_parquet(spectrum, snakemake.output.spectrum)
    with atomic_output(snakemake.output.means) as tmp, open(tmp, "wb") as handle:
        np.save(handle, means)
