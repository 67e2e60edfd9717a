# Self-attention statistics per layer and head (docs/methods.md, Attention heads): one forward pass over the stored
# sequences with hooks on the attention projections; by default for checkpoint models only.

from layergeom.stream.selection import describe

ATTENTION = config["attention"]
ATTENTION_PAIRS = [(m, c) for m, c in PAIRS if ATTENTION["scope"] == "all" or config["models"][m].get("checkpoint")]


rule attention:
    input:
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        model=lambda wc: model_inputs(wc.model),
    output:
        table=f"{RESULTS}/attention/{{model}}/{{corpus}}/heads.parquet",
    log:
        "logs/attention/{model}/{corpus}.log",
    benchmark:
        "benchmarks/out/attention/{model}/{corpus}.tsv"
    conda:
        CONDA_ENV
    threads: workflow.cores
    resources:
        gpu=lambda wc: int(lgconfig.extraction_settings(config, wc.model)["device"] == "cuda"),
    params:
        model=lambda wc: config["models"][wc.model],
        settings=lambda wc: extraction_params(wc.model),
        selection=stage_selection("attention"),
    script:
        "../scripts/attention_heads.py"


TARGETS += [f"{RESULTS}/attention/{m}/{c}/heads.parquet" for m, c in ATTENTION_PAIRS]
