# Self-attention statistics per layer and head (docs/methods.md, Attention heads): one forward pass over the
# stored sequences with hooks on the attention projections; by default for checkpoint models only.


rule attention:
    input:
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        model=PLAN.model_inputs,
    output:
        table=f"{RESULTS}/attention/{{model}}/{{corpus}}/heads.parquet",
    log:
        "logs/attention/{model}/{corpus}.log",
    benchmark:
        "benchmarks/out/attention/{model}/{corpus}.tsv"
    conda:
        CONDA_ENV
    threads: lambda wc: PLAN.model_threads(wc.model, workflow.cores)
    resources:
        gpu=PLAN.gpu,
    params:
        model=lambda wc: config["models"][wc.model],
        settings=lambda wc: PLAN.extract_params(wc)["settings"],
        selection=PLAN.selection("attention"),
    script:
        "../scripts/attention_heads.py"
