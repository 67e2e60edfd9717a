"""Cross-model figures of one corpus over relative depth (rule stats_overlay)."""

import polars as pl

from layergeom.joblog import job_logging
from layergeom.norm_variance_plots import overlay, shares_figure

with job_logging(snakemake.log[0]):
    frames = {
        model: pl.read_parquet(path)
        for model, path in zip(snakemake.params.models, snakemake.input.tables)
    }
    corpus = snakemake.wildcards.corpus
    out = snakemake.output
    overlay(
        frames,
        [("slope", "slope b of V = a + b M"), ("r2", "R² of the fit")],
        f"Fit of V on M over token types — {corpus}",
        out.slope_r2,
        hlines={"slope": -1.0},
    )
    overlay(frames, [("cv_q", "std / mean of Q over types")], f"Spread of Q — {corpus}", out.cv_q)
    overlay(frames, [("vw_over_v", "V_W / V_all")], f"Within-type share of variance — {corpus}", out.vw_over_v)
    shares_figure(frames, f"Decomposition of Q_all — {corpus}", out.shares)
