"""layergeom: layer-by-layer geometry of transformer hidden states."""

__version__ = "0.1.0"
