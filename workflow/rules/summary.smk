# Per-layer norm summary of every store (fed by the stream shards), its figures, and the cross-model overlay.


register_stream("summary", config["selection"])


rule summary:
    input:
        states=hidden_header,
        parts=stream_parts,
    output:
        table=f"{RESULTS}/summary/{{model}}/{{corpus}}/layers.parquet",
    log:
        "logs/summary/{model}/{corpus}.log",
    benchmark:
        "benchmarks/out/summary/{model}/{corpus}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/summary.py"


rule summary_figure:
    input:
        tables=lambda wc: [f"{RESULTS}/summary/{m}/{wc.corpus}/layers.parquet" for m, c in PAIRS if c == wc.corpus],
    output:
        figure=report(
            f"{RESULTS}/figures/summary/{{corpus}}/norms.png",
            caption="../report/summary_norms.rst",
            category="summary",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "norms over layers"},
        ),
    log:
        "logs/summary/figure_{corpus}.log",
    benchmark:
        "benchmarks/out/summary/figure_{corpus}.tsv"
    conda:
        CONDA_ENV
    params:
        models=lambda wc: [m for m, c in PAIRS if c == wc.corpus],
        selection=config["selection"],
    script:
        "../scripts/summary_figure.py"


TARGETS += sorted({f"{RESULTS}/figures/summary/{c}/norms.png" for _, c in PAIRS})
register_table(
    "summary",
    rules.summary.output.table,
    "n_tokens, mean_norm and mean_sq_norm of the hidden states (uncentered)",
    selection=config["selection"],
)
