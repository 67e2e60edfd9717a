"""The analyses the workflow runs, listed once: the DAG, the stream shards, the fused passes, the tables and the
findings are built from this list (in this order)."""

from __future__ import annotations

from layergeom.analyses import (
    anisotropy,
    attention,
    dimensions,
    layer_cka,
    linearity,
    massive,
    norm_variance,
    posctx,
    summary,
)
from layergeom.analyses.spec import Analysis

ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        summary.ANALYSIS,
        norm_variance.ANALYSIS,
        anisotropy.ANALYSIS,
        attention.ANALYSIS,
        posctx.ANALYSIS,
        dimensions.ANALYSIS,
        massive.ANALYSIS,
        linearity.ANALYSIS,
        layer_cka.ANALYSIS,
    )
}


def analysis(name: str) -> Analysis:
    """The analysis named ``name``; an unknown name is an error that lists the known ones."""
    if name not in ANALYSES:
        raise KeyError(f"no analysis '{name}' in layergeom/analyses/registry.py (known: {', '.join(ANALYSES)})")
    return ANALYSES[name]


def kinds() -> dict[str, type]:
    """Every accumulator kind of a registered analysis, by class name."""
    return {kind.__name__: kind for a in ANALYSES.values() for kind in a.kinds}
