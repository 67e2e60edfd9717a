# Cross-model tables: for every registered analysis, every model's per-layer table on one corpus stacked with
# model, corpus and relative depth, as CSV, Markdown and HTML, under the analysis' report category.


rule table:
    input:
        tables=lambda wc: PLAN.corpus_tables(wc.analysis)(wc),
    output:
        csv=report(
            f"{RESULTS}/tables/{{analysis}}/{{corpus}}.csv",
            caption="../report/table.rst",
            category="{analysis}",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "layer table (CSV)"},
        ),
        md=f"{RESULTS}/tables/{{analysis}}/{{corpus}}.md",
        html=report(
            f"{RESULTS}/tables/{{analysis}}/{{corpus}}.html",
            caption="../report/table.rst",
            category="{analysis}",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "layer table (HTML)"},
        ),
    log:
        "logs/tables/{analysis}/{corpus}.log",
    benchmark:
        "benchmarks/out/tables/{analysis}/{corpus}.tsv"
    wildcard_constraints:
        analysis=r"[A-Za-z0-9_]+",
    conda:
        CONDA_ENV
    params:
        models=lambda wc: PLAN.corpus_models(wc.analysis, wc.corpus),
        spec=PLAN.table_spec,
    script:
        "../scripts/tables_collect.py"
