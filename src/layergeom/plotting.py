"""Shared matplotlib helpers: a headless backend, model styles, panel grids, legends of line styles, discrete
layer colours and atomic saving of small PNGs."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import BoundaryNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from PIL import Image  # noqa: E402

from layergeom.io.atomic import atomic_output  # noqa: E402

DPI = 72
MAX_PIXELS = 1000
COLORS = 32
MAX_PANELS = 8  # per-layer small multiples show at most this many layers (as their captions say)
MAX_TICKS = 12  # labelled layers on a layer colour bar
TICK_SIZE = 8


def line_style(kind: str) -> str:
    """Solid lines for decoders, dashed for encoders."""
    return "-" if kind == "decoder" else "--"


def spread_layers(n: int, most: int = MAX_PANELS) -> list[int]:
    """Indices of at most ``most`` of ``n`` layers: all of them, or the first, the last and evenly spaced between."""
    if n <= most:
        return list(range(n))
    return sorted({int(i) for i in np.rint(np.linspace(0, n - 1, most))})


def shown_layers(shown: int, total: int) -> str:
    """What a per-layer figure's title says about the layers it shows."""
    if shown == total:
        return f"all {total} layers"
    return f"{shown} of {total} layers: the first, the last and evenly spaced between"


def panel_grid(n: int, size: float = 2.6, projection: str | None = None) -> tuple[plt.Figure, list[Axes]]:
    """A near-square grid of ``n`` panels (constrained layout), readable tick labels."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(size * cols + 1.0, size * rows + 0.8), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1, projection=projection) for i in range(n)]
    for ax in axes:
        ax.tick_params(labelsize=TICK_SIZE)
    return fig, axes


def style_legend(where: Axes | Figure, styles: Mapping[str, str | Mapping], **kwargs) -> Legend:
    """A legend of black proxy lines, label -> line style (or Line2D keywords), beside any other legend."""
    previous = where.get_legend() if isinstance(where, Axes) else None
    handles = [
        Line2D([], [], color="k", **({"linestyle": style} if isinstance(style, str) else style))
        for style in styles.values()
    ]
    legend = where.legend(handles, list(styles), **kwargs)
    if previous is not None:
        where.add_artist(previous)
    return legend


def layer_colours(fig: plt.Figure, axes, layers: Sequence[int]) -> dict[int, tuple]:
    """One viridis colour per integer layer in depth order, with a discrete colour bar ticked by layer number."""
    layers = sorted({int(layer) for layer in layers})
    cmap = plt.get_cmap("viridis", len(layers))
    norm = BoundaryNorm(np.arange(len(layers) + 1) - 0.5, len(layers))
    label = "layer (0 = embeddings output)" if 0 in layers else "layer (block number)"
    bar = fig.colorbar(plt.cm.ScalarMappable(norm, cmap), ax=axes, shrink=0.8, label=label)
    ticks = range(0, len(layers), math.ceil(len(layers) / MAX_TICKS))
    bar.set_ticks(list(ticks), labels=[str(layers[i]) for i in ticks])
    bar.minorticks_off()
    return {layer: cmap(i) for i, layer in enumerate(layers)}


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
