"""Per-layer figures of one store's position and context components."""

from layergeom import posctx_plots as plots
from layergeom.joblog import job_logging
from layergeom.posctx import read_components

with job_logging(snakemake.log[0]):  # noqa: F821
    out = snakemake.output  # noqa: F821
    comp = read_components(snakemake.input.components)  # noqa: F821
    pos, ctx, attrs = comp["pos"], comp["ctx"], comp["attrs"]
    names = attrs["layer_names"]
    plots.save(plots.pos_pca(pos, comp["positions"], names, attrs, dims=2), out.pca2)
    plots.save(plots.pos_pca(pos, comp["positions"], names, attrs, dims=3), out.pca3)
    plots.save(plots.pos_gram(pos, comp["positions"], names, attrs), out.gram)
    plots.save(plots.ctx_cosines(ctx, comp["topics"], names, attrs), out.ctx_cos)
    plots.save(plots.pos_ctx_cosines(pos, ctx, comp["positions"], names, attrs), out.pos_ctx_cos)
