# Norm of the mean against variance per token type (SPEC.md section 1): token shards -> merge
# -> tables -> figures. Shard folders of partial moments stay beside the tables, so changing the
# count range or the exclusions only reruns the merge.

from layergeom.norm_variance import Exclusions, describe_exclusions
from layergeom.selection import describe as describe_selection

STATS = config["stats"]
STATS_DIR = f"{RESULTS}/stats/{{model}}/{{corpus}}"
STATS_SHARDS = [f"{k}-of-{STATS['shards']}" for k in range(STATS["shards"])]
STATS_PAIRS = [(m, c) for m, c in PAIRS if corpus_mode(c) in STATS["modes"]]
STATS_EXCLUSIONS = Exclusions(
    tuple(STATS["exclude"]["token_ids"]),
    STATS["exclude"]["first_position"],
    STATS["exclude"]["outlier_factor"],
)


STATS_CAPTION = {
    "selection_text": describe_selection(**stage_selection("stats")),
    "filtered_text": describe_exclusions(STATS_EXCLUSIONS),
    "min_count": STATS["min_count"],
    "max_count": STATS["max_count"],
}


rule stats_shard:
    input:
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    output:
        parts=directory(f"{STATS_DIR}/parts/{{shard}}"),
    params:
        selection=stage_selection("stats"),
        block_tokens=STATS["block_tokens"],
    wildcard_constraints:
        shard=r"\d+-of-\d+",
    log:
        "logs/stats/{model}/{corpus}/shard_{shard}.log",
    benchmark:
        "benchmarks/out/stats/{model}/{corpus}/shard_{shard}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/stats_shard.py"


rule stats_merge:
    input:
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        parts=expand(f"{STATS_DIR}/parts/{{shard}}", shard=STATS_SHARDS, allow_missing=True),
    output:
        types=f"{STATS_DIR}/token_types.parquet",
        layers=f"{STATS_DIR}/layers.parquet",
        top=f"{STATS_DIR}/top_q.parquet",
    params:
        settings={k: STATS[k] for k in ("min_count", "max_count", "top_q", "exclude")},
    log:
        "logs/stats/{model}/{corpus}/merge.log",
    benchmark:
        "benchmarks/out/stats/{model}/{corpus}/merge.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/stats_merge.py"


rule stats_figures:
    input:
        types=f"{STATS_DIR}/token_types.parquet",
        layers=f"{STATS_DIR}/layers.parquet",
        top=f"{STATS_DIR}/top_q.parquet",
    output:
        scatter_all=report(
            f"{RESULTS}/figures/stats/{{corpus}}/{{model}}/scatter_all.png",
            caption="../report/stats_scatter.rst",
            category="Norm and variance",
            subcategory="{corpus}",
            labels={"model": "{model}", "figure": "V against M, all"},
        ),
        scatter_filtered=report(
            f"{RESULTS}/figures/stats/{{corpus}}/{{model}}/scatter_filtered.png",
            caption="../report/stats_scatter.rst",
            category="Norm and variance",
            subcategory="{corpus}",
            labels={"model": "{model}", "figure": "V against M, filtered"},
        ),
        top_q=report(
            f"{RESULTS}/figures/stats/{{corpus}}/{{model}}/top_q.png",
            caption="../report/stats_top_q.rst",
            category="Norm and variance",
            subcategory="{corpus}",
            labels={"model": "{model}", "figure": "largest Q"},
        ),
    params:
        outlier_factor=STATS["exclude"]["outlier_factor"],
        lines=STATS["top_q"],
        **STATS_CAPTION,
    log:
        "logs/stats/{model}/{corpus}/figures.log",
    benchmark:
        "benchmarks/out/stats/{model}/{corpus}/figures.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/stats_figures.py"


rule stats_overlay:
    input:
        tables=lambda wc: [
            f"{RESULTS}/stats/{m}/{wc.corpus}/layers.parquet" for m, c in STATS_PAIRS if c == wc.corpus
        ],
    output:
        slope_r2=report(
            f"{RESULTS}/figures/stats/{{corpus}}/slope_r2.png",
            caption="../report/stats_slope_r2.rst",
            category="Norm and variance",
            subcategory="{corpus}",
            labels={"model": "all models", "figure": "slope and R² over depth"},
        ),
        cv_q=report(
            f"{RESULTS}/figures/stats/{{corpus}}/cv_q.png",
            caption="../report/stats_cv_q.rst",
            category="Norm and variance",
            subcategory="{corpus}",
            labels={"model": "all models", "figure": "cv of Q over depth"},
        ),
        shares=report(
            f"{RESULTS}/figures/stats/{{corpus}}/shares.png",
            caption="../report/stats_shares.rst",
            category="Norm and variance",
            subcategory="{corpus}",
            labels={"model": "all models", "figure": "shares of Q_all over depth"},
        ),
        vw_over_v=report(
            f"{RESULTS}/figures/stats/{{corpus}}/vw_over_v.png",
            caption="../report/stats_vw_over_v.rst",
            category="Norm and variance",
            subcategory="{corpus}",
            labels={"model": "all models", "figure": "V_W / V_all over depth"},
        ),
    params:
        models=lambda wc: [m for m, c in STATS_PAIRS if c == wc.corpus],
        **STATS_CAPTION,
    log:
        "logs/stats/overlay_{corpus}.log",
    benchmark:
        "benchmarks/out/stats/overlay_{corpus}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/stats_overlay.py"


TARGETS += [
    f"{RESULTS}/figures/stats/{c}/{m}/{name}.png"
    for m, c in STATS_PAIRS
    for name in ("scatter_all", "scatter_filtered", "top_q")
]
TARGETS += sorted(
    {f"{RESULTS}/figures/stats/{c}/{name}.png" for _, c in STATS_PAIRS for name in ("slope_r2", "cv_q", "shares", "vw_over_v")}
)
register_table("stats", rules.stats_merge.output.layers, "Norm and variance",
               "per layer, both variants (all types / outliers excluded): fit V = a + b M over token types, cv_q, "
               "shares of M_all, V_B and V_W in Q_all (SPEC.md section 1)", selection=stage_selection("stats"), pairs=STATS_PAIRS)
