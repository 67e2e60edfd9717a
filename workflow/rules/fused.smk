# Fused extraction (extraction.store: none): no store. The token table and a header (layer names and
# attributes, no tokens) come first; then each token shard's forward pass feeds every analysis registered
# for the pair (as the stream rule would from a store) and writes the same temporary partials.


rule fused_tokens:
    input:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=lambda wc: model_inputs(wc.model),
    output:
        header=directory(f"{RESULTS}/hidden/{{model}}/{{corpus}}/header.zarr"),
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    log:
        "logs/fused/{model}/{corpus}/tokens.log",
    benchmark:
        "benchmarks/out/fused/{model}/{corpus}/tokens.tsv"
    wildcard_constraints:
        model=FUSED_MODELS,
    conda:
        CONDA_ENV
    threads: 2
    params:
        spec=extract_params,
    script:
        "../scripts/fused_tokens.py"


rule fused_extract:
    input:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=lambda wc: model_inputs(wc.model),
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    output:
        parts=temp(directory(f"{RESULTS}/parts/{{model}}/{{corpus}}/stream/{{shard}}")),
    log:
        "logs/fused/{model}/{corpus}/{shard}.log",
    benchmark:
        "benchmarks/out/fused/{model}/{corpus}/{shard}.tsv"
    wildcard_constraints:
        model=FUSED_MODELS,
    conda:
        CONDA_ENV
    threads: 8
    resources:
        gpu=lambda wc: int(lgconfig.extraction_settings(config, wc.model)["device"] == "cuda"),
    params:
        spec=extract_params,
        plans=fused_plans,
        budget_gb=lambda wc: lgconfig.extraction_settings(config, wc.model)["accumulator_budget_gb"],
    script:
        "../scripts/fused_extract.py"
