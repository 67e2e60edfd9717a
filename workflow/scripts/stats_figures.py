"""Per model and corpus: V against M per layer for both variants, and the largest-Q types."""

import polars as pl

from layergeom.joblog import job_logging
from layergeom.norm_variance_plots import scatter_grid, top_q_figure

with job_logging(snakemake.log[0]):
    title = f"{snakemake.wildcards.model} on {snakemake.wildcards.corpus}"
    types = pl.read_parquet(snakemake.input.types)
    layers = pl.read_parquet(snakemake.input.layers)
    scatter_grid(types, layers, "all", title, snakemake.output.scatter_all)
    scatter_grid(types, layers, "filtered", title, snakemake.output.scatter_filtered)
    top_q_figure(
        types,
        pl.read_parquet(snakemake.input.top),
        snakemake.params.outlier_factor,
        snakemake.params.lines,
        f"Largest Q per layer — {title}",
        snakemake.output.top_q,
    )
