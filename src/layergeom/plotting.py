"""Shared matplotlib helpers: a headless backend, model styles, atomic saving of small PNGs."""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from layergeom.io.atomic import atomic_output  # noqa: E402

DPI = 72
MAX_PIXELS = 1000
COLORS = 32


def line_style(kind: str) -> str:
    """Solid lines for decoders, dashed for encoders."""
    return "-" if kind == "decoder" else "--"


def figure_dpi(fig: plt.Figure) -> float:
    """``DPI``, lowered so that the longer side of the figure stays within ``MAX_PIXELS``."""
    return min(DPI, MAX_PIXELS / max(fig.get_size_inches()))


def save(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save a figure atomically as a palette PNG of at most ``COLORS`` colours and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=figure_dpi(fig), bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(COLORS, method=Image.Quantize.FASTOCTREE)
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
