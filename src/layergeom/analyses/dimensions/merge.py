"""The dimensions merge (pass 1): the shards' unit sums and squares and the shared scatter into the per-layer
measures (temporary) and the standardization that pass 2 applies."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.analyses.dimensions.accumulate import UNITS, UnitSquares
from layergeom.analyses.dimensions.metrics import isoscore, ranked, standardization, top_shares
from layergeom.analyses.spec import MergeJob
from layergeom.io.atomic import atomic_output, write_parquet
from layergeom.io.store import open_hidden, read_tokens
from layergeom.joblog import tracked
from layergeom.stats.protocol import load_merged
from layergeom.stats.scatter import Scatter
from layergeom.stream.feeds import load_scatter
from layergeom.stream.selection import token_mask


def layer_row(units: UnitSquares, scatter: Scatter) -> dict:
    """One layer's measures: the mean cosine as the sum of its contributions, the top shares, the ranked top
    dimensions with their contributions, and IsoScore of the covariance."""
    contributions = units.finalize()
    order = ranked(contributions)
    return {
        "n_tokens": units.count,
        "mean_cos": float(contributions.sum()),
        **top_shares(contributions),
        "isoscore": isoscore(scatter.finalize()),
        "top_dims": order.tolist(),
        "top_contributions": contributions[order].tolist(),
    }


def merge(job: MergeJob) -> None:
    """Write the per-layer measures (store positions as ``layer``) and the (layers, 2, d) standardization."""
    array = open_hidden(job.header)
    mask = token_mask(read_tokens(job.tokens, array), **job.selection)
    rows, standardize = [], []
    for layer in tracked(range(array.shape[0]), array.shape[0], "layers"):
        units = load_merged(job.parts, layer, UNITS, UnitSquares)
        scatter = load_scatter(job.parts, layer, mask)
        if scatter.count == 0:
            raise ValueError(f"layer {layer}: no token was selected")
        rows.append({"layer": layer, **layer_row(units, scatter)})
        standardize.append(standardization(scatter))
    write_parquet(pl.DataFrame(rows), job.outputs["layers"])
    with atomic_output(job.outputs["standardize"]) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.stack(standardize))
