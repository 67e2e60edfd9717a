"""The layer_cka merge: every layer pair's cross products and both layers' scatters over the shards into one row
per pair (l < m)."""

from __future__ import annotations

import numpy as np
import polars as pl

from layergeom.analyses.layer_cka.accumulate import NAME
from layergeom.analyses.spec import MergeJob
from layergeom.io.atomic import write_parquet
from layergeom.io.store import layer_axis, open_hidden, read_tokens
from layergeom.stats.protocol import load_merged
from layergeom.stats.scatter import CrossProduct, cka_of
from layergeom.stream.feeds import load_scatter
from layergeom.stream.selection import token_mask


def cka_matrix(parts, n_layers: int, mask) -> np.ndarray:
    """Linear CKA of every pair of stored layers, (L, L) with 1 on the diagonal; one layer's partials in memory at
    a time (its scatter, then its cross products with the later layers)."""
    counts, norms = [], []
    for layer in range(n_layers):
        scatter = load_scatter(parts, layer, mask)
        counts.append(scatter.count)
        norms.append(float(np.linalg.norm(scatter.scatter)))
    cka = np.eye(n_layers)
    for layer in range(n_layers - 1):
        cross = load_merged(parts, layer, NAME, CrossProduct)
        later = cross.finalize()
        if len(later) != n_layers - 1 - layer or cross.count != counts[layer]:
            raise ValueError(
                f"layer {layer}: cross products with {len(later)} later layers over {cross.count} tokens; the store "
                f"has {n_layers - 1 - layer} later layers and the scatter {counts[layer]} tokens"
            )
        for step, sxy in enumerate(later, start=1):
            cka[layer, layer + step] = cka[layer + step, layer] = cka_of(sxy, norms[layer], norms[layer + step])
    return cka


def pair_table(header, tokens, parts, selection: dict) -> pl.DataFrame:
    """layer, other_layer (model indices of two stored layers, layer < other_layer), layer_name, other_layer_name,
    relative_depth, other_relative_depth, cka and the model's kind."""
    array = open_hidden(header)
    axis = layer_axis(array).select("layer", "layer_name", "relative_depth")
    cka = cka_matrix(parts, axis.height, token_mask(read_tokens(tokens, array), **selection))
    first, second = np.triu_indices(axis.height, k=1)
    other = axis.rename(lambda column: f"other_{column}")
    return pl.concat(
        [
            axis[first],
            other[second],
            pl.DataFrame({"cka": cka[first, second], "kind": [array.attrs.get("kind")] * len(first)}),
        ],
        how="horizontal",
    ).select("layer", "other_layer", pl.exclude("layer", "other_layer"))


def merge(job: MergeJob) -> None:
    """Write the every-pair table."""
    write_parquet(pair_table(job.header, job.tokens, job.parts, dict(job.selection)), job.outputs["table"])
