"""Norm of the mean against variance per token type, and the whole-set decomposition, from merged moments.

Each layer is reported twice: variant ``all`` (the token selection as configured) and ``filtered``
(without the listed token ids, optionally the first position, and types whose Q is an outlier).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import zarr

from layergeom.analyses.norm_variance.accumulate import NAME
from layergeom.analyses.norm_variance.types import mean_pca, regroup, surface, surface_ids
from layergeom.io.atomic import write_parquet
from layergeom.io.store import layer_axis, open_hidden, read_tokens, stored_layers
from layergeom.joblog import tracked
from layergeom.stats.moments import GroupedMoments, Moments
from layergeom.stats.protocol import load_merged


@dataclass(frozen=True)
class Exclusions:
    """What the filtered variant drops: listed token ids, the first position, outliers of Q."""

    token_ids: tuple[int, ...] = ()
    first_position: bool = True
    outlier_factor: float | None = 10.0

    @classmethod
    def from_settings(cls, exclude: dict) -> Exclusions:
        """From the config's ``norm_variance.exclude`` section."""
        return cls(tuple(exclude["token_ids"]), exclude["first_position"], exclude["outlier_factor"])


def describe_exclusions(exclusions: Exclusions) -> str:
    """A caption phrase saying what the filtered variant drops."""
    parts = []
    if exclusions.first_position:
        parts.append("the first position of every sequence")
    if exclusions.token_ids:
        parts.append("token ids " + ", ".join(map(str, exclusions.token_ids)))
    if exclusions.outlier_factor is not None:
        parts.append(f"types whose Q exceeds {exclusions.outlier_factor:g} times the median Q")
    return "; ".join(parts) if parts else "nothing (it equals the variant all)"


def split_first(keyed: Moments) -> tuple[Moments, Moments]:
    """Moments keyed by token id of the occurrences after the first position, and at it."""
    first = keyed.ids % 2 == 1
    rest_part, first_part = keyed.take(~first), keyed.take(first)
    return (
        Moments(rest_part.ids // 2, rest_part.n, rest_part.mean, rest_part.s, rest_part.q),
        Moments(first_part.ids // 2, first_part.n, first_part.mean, first_part.s, first_part.q),
    )


def combine(parts: Iterable[Moments]) -> Moments:
    """Merge moments over the same keys into one, holding one part at a time."""
    parts = iter(parts)
    acc = GroupedMoments.from_moments(next(parts))
    for part in parts:
        acc.merge(part)
    return acc.moments()


def ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and R^2 of the least-squares line y = a + b x (NaN if undetermined)."""
    if len(x) < 2:
        return np.nan, np.nan, np.nan
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if sxx == 0.0:
        return np.nan, np.nan, np.nan
    slope = float(dx @ dy) / sxx
    intercept = float(y.mean() - slope * x.mean())
    r2 = float((dx @ dy) ** 2 / (sxx * syy)) if syy > 0.0 else np.nan
    return slope, intercept, r2


def decomposition(moments: Moments) -> dict[str, float]:
    """Pooled Q_all, M_all, V_W, V_B of all occurrences of the given types, and their shares."""
    total = int(moments.n.sum())
    if total == 0:
        keys = ("q_all", "m_all", "v_w", "v_b", "m_share", "vb_share", "vw_share", "vw_over_v")
        return dict.fromkeys(keys, np.nan)
    weights = moments.n.astype(np.float64) / total
    center = weights @ moments.mean
    offsets = moments.mean - center
    q_all = float(moments.q.sum() / total)
    m_all = float(center @ center)
    v_w = float(moments.s.sum() / total)
    v_b = float(weights @ np.einsum("ij,ij->i", offsets, offsets))
    return {
        "q_all": q_all,
        "m_all": m_all,
        "v_w": v_w,
        "v_b": v_b,
        "m_share": m_all / q_all,
        "vb_share": v_b / q_all,
        "vw_share": v_w / q_all,
        "vw_over_v": v_w / (v_w + v_b) if v_w + v_b > 0 else np.nan,
    }


def identity_error(q: np.ndarray, m: np.ndarray, v: np.ndarray) -> float:
    """Largest |Q - M - V| / Q over the types with Q > 0."""
    positive = q > 0
    if not positive.any():
        return 0.0
    return float(np.max(np.abs(q - m - v)[positive] / q[positive]))


def robust_outliers(q: np.ndarray, factor: float | None) -> np.ndarray:
    """Types whose Q exceeds ``factor`` times the median Q (none if factor is None)."""
    if factor is None or len(q) == 0:
        return np.zeros(len(q), dtype=bool)
    return q > factor * np.median(q)


def summarize(moments: Moments, use: np.ndarray) -> dict[str, float]:
    """One layer row: fit of V on M, cv of Q and the decomposition over the ``use`` types."""
    q, m, v = moments.qmv()
    slope, intercept, r2 = ols(m[use], v[use])
    chosen = q[use]
    return {
        "n_types": int(use.sum()),
        "n_tokens": int(moments.n[use].sum()),
        "slope": slope,
        "intercept": intercept,
        "r2": r2,
        "cv_q": float(chosen.std() / chosen.mean()) if len(chosen) else np.nan,
        **decomposition(moments.take(use)),
        "max_identity_error": identity_error(q, m, v),
    }


def whole_set(moments: Moments) -> dict[str, float]:
    """The decomposition over every type of the variant, whatever its count ([NV] decomposes the whole set)."""
    keys = ("m_share", "vb_share", "vw_share", "vw_over_v")
    parts = decomposition(moments)
    return {"whole_n_tokens": int(moments.n.sum()), **{f"whole_{key}": parts[key] for key in keys}}


def type_frame(variant: str, layer: int, moments: Moments, in_range: np.ndarray, excluded: np.ndarray) -> pl.DataFrame:
    """Per-type rows of one layer and variant."""
    q, m, v = moments.qmv()
    return pl.DataFrame(
        {
            "variant": variant,
            "layer": layer,
            "token_id": moments.ids,
            "n": moments.n,
            "Q": q,
            "M": m,
            "V": v,
            "in_range": in_range,
            "excluded": excluded,
        },
        schema_overrides={"layer": pl.Int64},
    )


@dataclass(frozen=True)
class LayerResult:
    """One layer's per-type rows, summary rows (one per variant), largest-Q types and type-mean PCA."""

    types: pl.DataFrame
    summary: list[dict]
    top: pl.DataFrame
    pca: pl.DataFrame


def pca_frame(layer: int, moments: Moments) -> pl.DataFrame:
    """The first two principal coordinates of the given types' means, with the explained variance ratios."""
    coords, ratios = mean_pca(moments.mean)
    return pl.DataFrame(
        {
            "layer": layer,
            "token_id": moments.ids,
            "n": moments.n,
            "pc1": coords[:, 0],
            "pc2": coords[:, 1],
            "explained1": ratios[0],
            "explained2": ratios[1],
        },
        schema_overrides={"layer": pl.Int64, "token_id": pl.Int64, "n": pl.Int64}
        | dict.fromkeys(("pc1", "pc2", "explained1", "explained2"), pl.Float64),
    )


def analyse_layer(
    keyed: Moments,
    layer: int,
    min_count: int,
    max_count: int,
    exclusions: Exclusions,
    top: int,
    type_of: np.ndarray | None = None,
) -> LayerResult:
    """Statistics of one layer from its merged moments keyed by :func:`type_keys`.

    ``type_of[token_id]`` is the type key of each token id (None: the token id itself)."""
    rest, first = split_first(keyed)
    if type_of is not None:
        rest, first = regroup(rest, type_of[rest.ids]), regroup(first, type_of[first.ids])
    everything = combine([rest, first])
    base = rest if exclusions.first_position else everything
    frames, summary, used = [], [], {}
    for variant, moments in (("all", everything), ("filtered", base)):
        in_range = (moments.n >= min_count) & (moments.n <= max_count)
        excluded = np.zeros(len(moments), dtype=bool)
        if variant == "filtered":
            excluded = np.isin(moments.ids, np.asarray(exclusions.token_ids, dtype=np.int64))
            candidates = in_range & ~excluded
            q = moments.qmv()[0]
            excluded[candidates] = robust_outliers(q[candidates], exclusions.outlier_factor)
        use = in_range & ~excluded
        used[variant] = moments.ids[use]
        frames.append(type_frame(variant, layer, moments, in_range, excluded))
        row = {"variant": variant, "layer": layer, **summarize(moments, use), **whole_set(moments)}
        row["n_excluded"] = int((in_range & excluded).sum())
        summary.append(row)
    ranked = frames[0].filter(pl.col("in_range")).sort("Q", descending=True)
    median_q = ranked["Q"].median() if ranked.height else np.nan
    top_frame = ranked.head(top).select(
        "layer",
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("rank"),
        "token_id",
        "n",
        "Q",
        "M",
        "V",
        (pl.col("Q") / median_q).alias("q_over_median"),
        pl.col("token_id").is_in(used["filtered"].tolist()).alias("in_filtered"),
    )
    in_range = (everything.n >= min_count) & (everything.n <= max_count)
    return LayerResult(pl.concat(frames), summary, top_frame, pca_frame(layer, everything.take(in_range)))


@dataclass(frozen=True)
class Tables:
    """The stage's outputs: per-type rows, per-layer rows, the largest-Q types and the type-mean PCA per layer."""

    types: pl.DataFrame
    layers: pl.DataFrame
    top: pl.DataFrame
    pca: pl.DataFrame


def type_strings(tokens: pl.DataFrame, type_key: str) -> tuple[pl.DataFrame, np.ndarray | None]:
    """Token id -> string of each type key, and the type key of every token id (None for ``token_id``)."""
    strings = tokens.select("token_id", "token").unique("token_id", keep="first").sort("token_id")
    if type_key == "token_id":
        return strings, None
    ids = strings["token_id"].to_numpy()
    keys = surface_ids(ids, strings["token"].to_list())
    type_of = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=np.int64)
    type_of[ids] = keys
    return strings.with_columns(pl.col("token").map_elements(surface, return_dtype=pl.String)), type_of


def norm_variance_tables(
    part_dirs: Sequence[str | os.PathLike],
    array: zarr.Array,
    tokens: pl.DataFrame,
    min_count: int,
    max_count: int,
    exclusions: Exclusions,
    top: int,
    type_key: str = "token_id",
) -> Tables:
    """Merge the shards' partial moments layer by layer into the stage's four tables."""
    if min_count > max_count:
        raise ValueError(f"min_count {min_count} is larger than max_count {max_count}")
    layers = stored_layers(array).tolist()
    strings, type_of = type_strings(tokens, type_key)
    results = [
        analyse_layer(
            load_merged(part_dirs, position, NAME, GroupedMoments).finalize(),
            layer,
            min_count,
            max_count,
            exclusions,
            top,
            type_of,
        )
        for position, layer in tracked(enumerate(layers), len(layers), "layers")
    ]
    rows = [row for result in results for row in result.summary]
    types = pl.concat([r.types for r in results]).join(strings, on="token_id", how="left", maintain_order="left")
    top_q = pl.concat([r.top for r in results]).join(strings, on="token_id", how="left", maintain_order="left")
    first = ["variant", "layer", "layer_name", "relative_depth", "after_final_norm"]
    layers = pl.DataFrame(rows).join(layer_axis(array), on="layer", how="left")
    return Tables(
        types.select("variant", "layer", "token_id", "token", "n", "Q", "M", "V", "in_range", "excluded").sort(
            "variant", "layer", "token_id"
        ),
        layers.select(*first, pl.exclude(first)).sort("variant", "layer"),
        top_q.select("layer", "rank", "token_id", "token", pl.exclude("layer", "rank", "token_id", "token")),
        pl.concat([r.pca for r in results]).join(strings, on="token_id", how="left", maintain_order="left"),
    )


def write_tables(
    states: str | os.PathLike,
    tokens: str | os.PathLike,
    parts: Sequence[str | os.PathLike],
    settings: dict,
    out: dict[str, str | os.PathLike],
) -> Tables:
    """Merge the shards' moments and write the ``types``, ``layers``, ``top`` and ``pca`` tables."""
    exclusions = Exclusions.from_settings(settings["exclude"])
    array = open_hidden(states)
    tables = norm_variance_tables(
        parts,
        array,
        read_tokens(tokens, array),
        settings["min_count"],
        settings["max_count"],
        exclusions,
        settings["top_q"],
        settings["type_key"],
    )
    write_parquet(tables.types, out["types"])
    write_parquet(tables.pca, out["pca"])
    write_parquet(tables.top, out["top"])
    write_parquet(tables.layers, out["layers"])
    return tables
