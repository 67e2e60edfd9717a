"""Layer to layer, every pair: linear CKA between every two stored layers (a layer x layer heatmap)."""

from layergeom.analyses.layer_cka import accumulate, merge
from layergeom.analyses.spec import Analysis, Figure, FigureSet, drawn_by
from layergeom.config import covers_layer_cka
from layergeom.stats.scatter import CrossProduct, Scatter

ANALYSIS = Analysis(
    name="layer_cka",
    what="per pair of stored layers l < m: linear CKA of h_l and h_m over the selected tokens",
    table="pairs.parquet",
    covers=lambda config, model, corpus: covers_layer_cka(config, config["models"][model]),
    feeds=accumulate.feeds,
    kinds=(CrossProduct, Scatter),
    merge=merge.merge,
    outputs={"table": "pairs.parquet"},
    facts=lambda config, selection: {"selection": selection},
    corpus_figures=(
        FigureSet(
            "figure",
            drawn_by("layergeom.analyses.layer_cka.plots", "corpus_figures"),
            (Figure("heatmap", "heatmap", "layer_cka_heatmap", "linear CKA of every layer pair"),),
        ),
    ),
)
