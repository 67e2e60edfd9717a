# Training dynamics (docs/methods.md, Training dynamics): per-layer measures of every checkpoint model against its step,
# one figure per (checkpoints entry, corpus, measure); and the untrained-block drift experiment.

# Per-layer tables drawn against step: name -> (table path pattern, columns, one panel each).
# Another stage's table joins with one line here.
TRAINING_MEASURES = {
    "summary": (f"{RESULTS}/summary/{{model}}/{{corpus}}/layers.parquet", ["mean_norm", "mean_sq_norm"]),
    "attention": (
        f"{RESULTS}/attention/{{model}}/{{corpus}}/heads.parquet",
        ["mean_q_norm", "mean_k_norm", "qk_cos", "mean_entropy", "mean_max_weight"],
    ),
    "anisotropy": (
        f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/layers.parquet",
        ["mean_cos", "sigma1_share", "twonn_id"],
    ),
    "norm_variance": (
        f"{RESULTS}/norm_variance/{{model}}/{{corpus}}/layers.parquet",
        ["m_share", "vb_share", "vw_share", "slope"],
        {"variant": "all"},
    ),
}
# Token selection of the measures whose stage states it, for the figure titles.
TRAINING_TOKENS = {
    "summary": describe(**config["selection"]),
    "attention": describe(**stage_selection("attention")),
    "anisotropy": describe(**ANISO_SELECTION),
    "norm_variance": describe(**stage_selection("norm_variance")),
}
DRIFT = config["drift"]


def family_corpora(family):
    """Corpora the checkpoint models of one entry run on."""
    models = {m for m, _ in CHECKPOINTS[family]}
    return sorted({c for m, c in PAIRS if m in models})


rule training_figure:
    input:
        tables=lambda wc: [
            TRAINING_MEASURES[wc.measure][0].format(model=m, corpus=wc.corpus) for m, _ in CHECKPOINTS[wc.family]
        ],
    output:
        figure=report(
            f"{RESULTS}/figures/dynamics/{{family}}/{{corpus}}/{{measure}}.png",
            caption="../report/training_measure.rst",
            category="dynamics",
            subcategory="{family}",
            labels={"model": "{family}", "corpus": "{corpus}", "figure": "{measure} over training"},
        ),
    log:
        "logs/dynamics/{family}/{corpus}/{measure}.log",
    benchmark:
        "benchmarks/out/dynamics/{family}/{corpus}/{measure}.tsv"
    wildcard_constraints:
        family="|".join(map(re.escape, CHECKPOINTS)) or "[^/]+",
        measure="|".join(map(re.escape, TRAINING_MEASURES)),
    conda:
        CONDA_ENV
    params:
        steps=lambda wc: [s for _, s in CHECKPOINTS[wc.family]],
        columns=lambda wc: TRAINING_MEASURES[wc.measure][1],
        where=lambda wc: (TRAINING_MEASURES[wc.measure][2:] or [{}])[0],
        tokens=lambda wc: TRAINING_TOKENS.get(wc.measure),
    script:
        "../scripts/training_figure.py"


rule drift:
    output:
        table=f"{RESULTS}/dynamics/drift.parquet",
    log:
        "logs/dynamics/drift.log",
    benchmark:
        "benchmarks/out/dynamics/drift.tsv"
    conda:
        CONDA_ENV
    threads: workflow.cores
    params:
        settings=DRIFT,
    script:
        "../scripts/drift.py"


rule drift_figure:
    input:
        table=f"{RESULTS}/dynamics/drift.parquet",
    output:
        figure=report(
            f"{RESULTS}/figures/dynamics/drift.png",
            caption="../report/drift_blocks.rst",
            category="dynamics",
            subcategory="untrained blocks",
            labels={"figure": "drift experiment"},
        ),
    log:
        "logs/dynamics/drift_figure.log",
    benchmark:
        "benchmarks/out/dynamics/drift_figure.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/drift_figure.py"


TARGETS += [
    f"{RESULTS}/figures/dynamics/{family}/{corpus}/{measure}.png"
    for family in CHECKPOINTS
    for corpus in family_corpora(family)
    for measure in TRAINING_MEASURES
]
TARGETS += [f"{RESULTS}/figures/dynamics/drift.png"] if DRIFT["enabled"] else []
