"""Merge the shards' moments into token_types, layers and top_q tables (rule stats_merge)."""

from layergeom.atomic import write_parquet
from layergeom.joblog import job_logging
from layergeom.norm_variance import Exclusions, stats_tables
from layergeom.store import open_hidden, read_tokens

with job_logging(snakemake.log[0]) as log:
    settings = snakemake.params.settings
    exclude = settings["exclude"]
    exclusions = Exclusions(
        tuple(exclude["token_ids"]), exclude["first_position"], exclude["outlier_factor"]
    )
    tables = stats_tables(
        snakemake.input.parts,
        open_hidden(snakemake.input.states),
        read_tokens(snakemake.input.tokens),
        settings["min_count"],
        settings["max_count"],
        exclusions,
        settings["top_q"],
    )
    write_parquet(tables.types, snakemake.output.types)
    write_parquet(tables.top, snakemake.output.top)
    write_parquet(tables.layers, snakemake.output.layers)
    log.info("%d type rows, %d layer rows", tables.types.height, tables.layers.height)
