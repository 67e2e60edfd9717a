# Training dynamics (docs/methods.md, Training dynamics): the training columns of every registered analysis
# against the step, one figure per (checkpoints entry, corpus, analysis); and the untrained-block drift experiment.


rule training_figure:
    input:
        tables=PLAN.training_tables,
    output:
        figure=report(
            PLAN.figure("dynamics", "{measure}", "{family}", "{corpus}"),
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
        family=PLAN.wildcard(PLAN.checkpoints),
        measure=PLAN.wildcard(PLAN.measures()),
    conda:
        CONDA_ENV
    params:
        steps=lambda wc: [s for _, s in PLAN.checkpoints[wc.family]],
        columns=lambda wc: list(PLAN.training_measure(wc.measure)["columns"]),
        where=lambda wc: dict(PLAN.training_measure(wc.measure)["where"]),
        tokens=lambda wc: PLAN.tokens(wc.measure),
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
        settings=config["drift"],
    script:
        "../scripts/drift.py"


rule drift_figure:
    input:
        table=f"{RESULTS}/dynamics/drift.parquet",
    output:
        figure=report(
            PLAN.figure("dynamics", "drift"),
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
