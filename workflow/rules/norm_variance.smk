# Norm of the mean against variance per token type: moments per type (stream shards) -> merge -> tables
# -> figures. Keep the shards' partials (--notemp) to change the count range or exclusions by a merge alone.

from layergeom.analyses.norm_variance.metrics import Exclusions, describe_exclusions
from layergeom.stream.selection import describe as describe_selection

NORM_VARIANCE = config["norm_variance"]
NV_DIR = f"{RESULTS}/norm_variance/{{model}}/{{corpus}}"
NV_FIG = f"{RESULTS}/figures/norm_variance/{{corpus}}"
NV_PAIRS = [(m, c) for m, c in PAIRS if corpus_mode(c) in NORM_VARIANCE["modes"]]
NV_EXCLUSIONS = Exclusions.from_settings(NORM_VARIANCE["exclude"])
NV_CAPTION = {
    "selection_text": describe_selection(**stage_selection("norm_variance")),
    "filtered_text": describe_exclusions(NV_EXCLUSIONS),
    "min_count": NORM_VARIANCE["min_count"],
    "type_key": NORM_VARIANCE["type_key"],
    "max_count": NORM_VARIANCE["max_count"],
}


def nv_figure(path, caption, model, what):
    """A figure of the analysis marked for the report."""
    return report(
        f"{NV_FIG}/{path}.png",
        caption=f"../report/{caption}.rst",
        category="norm_variance",
        subcategory="{corpus}",
        labels={"model": model, "figure": what},
    )


register_stream("norm_variance", stage_selection("norm_variance"), NV_PAIRS)


rule norm_variance_merge:
    input:
        states=hidden_header,
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        parts=stream_parts,
    output:
        types=f"{NV_DIR}/token_types.parquet",
        layers=f"{NV_DIR}/layers.parquet",
        top=f"{NV_DIR}/top_q.parquet",
        pca=f"{NV_DIR}/type_pca.parquet",
    log:
        "logs/norm_variance/{model}/{corpus}/merge.log",
    benchmark:
        "benchmarks/out/norm_variance/{model}/{corpus}/merge.tsv"
    conda:
        CONDA_ENV
    params:
        settings={k: NORM_VARIANCE[k] for k in ("min_count", "max_count", "top_q", "type_key", "exclude")},
    script:
        "../scripts/norm_variance_merge.py"


rule norm_variance_figures:
    input:
        types=f"{NV_DIR}/token_types.parquet",
        layers=f"{NV_DIR}/layers.parquet",
        top=f"{NV_DIR}/top_q.parquet",
        pca=f"{NV_DIR}/type_pca.parquet",
    output:
        scatter_all=nv_figure("{model}/scatter_all", "norm_variance_scatter", "{model}", "V against M, all"),
        scatter_filtered=nv_figure(
            "{model}/scatter_filtered", "norm_variance_scatter", "{model}", "V against M, filtered"
        ),
        top_q=nv_figure("{model}/top_q", "norm_variance_top_q", "{model}", "largest Q"),
        histograms=nv_figure("{model}/histograms", "norm_variance_histograms", "{model}", "Q, M, V over types"),
        type_pca=nv_figure("{model}/type_pca", "norm_variance_type_pca", "{model}", "PCA of the type means"),
    log:
        "logs/norm_variance/{model}/{corpus}/figures.log",
    benchmark:
        "benchmarks/out/norm_variance/{model}/{corpus}/figures.tsv"
    conda:
        CONDA_ENV
    params:
        **NV_CAPTION,
        outlier_factor=NORM_VARIANCE["exclude"]["outlier_factor"],
        lines=NORM_VARIANCE["top_q"],
    script:
        "../scripts/norm_variance_figures.py"


rule norm_variance_overlay:
    input:
        tables=lambda wc: [
            f"{RESULTS}/norm_variance/{m}/{wc.corpus}/layers.parquet" for m, c in NV_PAIRS if c == wc.corpus
        ],
    output:
        slope_r2=nv_figure("slope_r2", "norm_variance_slope_r2", "all models", "slope and R² over depth"),
        cv_q=nv_figure("cv_q", "norm_variance_cv_q", "all models", "cv of Q over depth"),
        shares=nv_figure("shares", "norm_variance_shares", "all models", "shares of Q_all over depth"),
        vw_over_v=nv_figure("vw_over_v", "norm_variance_vw_over_v", "all models", "V_W / V_all over depth"),
    log:
        "logs/norm_variance/overlay_{corpus}.log",
    benchmark:
        "benchmarks/out/norm_variance/overlay_{corpus}.tsv"
    conda:
        CONDA_ENV
    params:
        **NV_CAPTION,
        models=lambda wc: [m for m, c in NV_PAIRS if c == wc.corpus],
    script:
        "../scripts/norm_variance_overlay.py"


TARGETS += [
    f"{RESULTS}/figures/norm_variance/{c}/{m}/{name}.png"
    for m, c in NV_PAIRS
    for name in ("scatter_all", "scatter_filtered", "top_q", "histograms", "type_pca")
]
TARGETS += sorted(
    {
        f"{RESULTS}/figures/norm_variance/{c}/{name}.png"
        for _, c in NV_PAIRS
        for name in ("slope_r2", "cv_q", "shares", "vw_over_v")
    }
)
register_table(
    "norm_variance",
    rules.norm_variance_merge.output.layers,
    "per layer, both variants (all types / outliers excluded): fit V = a + b M over token types, cv_q, "
    "shares of M_all, V_B and V_W in Q_all",
    selection=stage_selection("norm_variance"),
    pairs=NV_PAIRS,
)
