"""Per-layer norm summary of a store: token count, mean norm and mean squared norm."""

from __future__ import annotations

import numpy as np
import polars as pl
import zarr

from layergeom.store import iter_layer, layer_names


def layer_norms(array: zarr.Array, mask: np.ndarray) -> pl.DataFrame:
    """Stream every layer once; float64 sums of norms and squared norms over selected tokens."""
    names = layer_names(array)
    rows = []
    for layer in range(array.shape[0]):
        n, s1, s2 = 0, 0.0, 0.0
        for block in iter_layer(array, layer, mask):
            sq = np.einsum("ij,ij->i", block.values, block.values)
            n += sq.size
            s1 += float(np.sqrt(sq).sum())
            s2 += float(sq.sum())
        rows.append({"layer": layer, "layer_name": names[layer], "n_tokens": n,
                     "mean_norm": s1 / n if n else np.nan, "mean_sq_norm": s2 / n if n else np.nan})
    return pl.DataFrame(rows, schema={"layer": pl.Int64, "layer_name": pl.Utf8, "n_tokens": pl.Int64,
                                      "mean_norm": pl.Float64, "mean_sq_norm": pl.Float64})
