"""Join the spectrum, centered cosine and intrinsic dimension into one row per layer (rule anisotropy_table)."""

import polars as pl

from layergeom.anisotropy import layer_table, merge_centered
from layergeom.atomic import write_parquet
from layergeom.joblog import job_logging
from layergeom.spectrum import load_accumulators
from layergeom.store import open_hidden

with job_logging(snakemake.log[0]) as log:
    array = open_hidden(snakemake.input.states)
    centered = merge_centered([load_accumulators(p) for p in snakemake.input.centered], array.shape[0])
    table = layer_table(array, pl.read_parquet(snakemake.input.spectrum), centered, pl.read_parquet(snakemake.input.id),
                        snakemake.params.selection)
    log.info("\n%s", table.select("layer", "mean_cos", "mean_cos_centered", "sigma1_share", "eff_rank", "twonn_id",
                                  "levina_bickel_id"))
    write_parquet(table, snakemake.output.table)
