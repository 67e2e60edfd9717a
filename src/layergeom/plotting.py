"""Shared matplotlib helpers: a headless backend, model styles, atomic saving."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from layergeom.io.atomic import atomic_output  # noqa: E402


def line_style(kind: str) -> str:
    """Solid lines for decoders, dashed for encoders."""
    return "-" if kind == "decoder" else "--"


def save(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save a figure atomically as PNG and close it."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
