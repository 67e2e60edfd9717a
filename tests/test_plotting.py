"""Figures are saved as small palette PNGs."""

from __future__ import annotations

from PIL import Image

from layergeom.plotting import COLORS, MAX_PIXELS, plt, save


def test_save_writes_a_palette_png_within_the_pixel_cap(tmp_path):
    fig, ax = plt.subplots(figsize=(30, 5))
    ax.imshow([[0.0, 1.0], [0.5, 0.25]], cmap="RdBu_r")
    save(fig, tmp_path / "wide.png")
    image = Image.open(tmp_path / "wide.png")
    assert image.mode == "P" and len(image.getcolors()) <= COLORS
    assert max(image.size) <= MAX_PIXELS * 1.05  # bbox "tight" may add a few pixels of padding
    assert not plt.get_fignums()
