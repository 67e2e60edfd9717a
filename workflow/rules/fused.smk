# Fused extraction (extraction.store: none): no store. The token table and a header (layer names and
# attributes, no tokens) come first; then each token shard's forward pass feeds every streamed analysis
# covering the pair (as the stream rule would from a store) and writes the same temporary partials.


rule fused_tokens:
    input:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=PLAN.model_inputs,
    output:
        header=directory(f"{RESULTS}/hidden/{{model}}/{{corpus}}/header.zarr"),
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    log:
        "logs/fused/{model}/{corpus}/tokens.log",
    benchmark:
        "benchmarks/out/fused/{model}/{corpus}/tokens.tsv"
    wildcard_constraints:
        model=PLAN.fused_models,
    conda:
        CONDA_ENV
    threads: 2
    params:
        spec=PLAN.extract_params,
    script:
        "../scripts/fused_tokens.py"


rule fused_extract:
    input:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=PLAN.model_inputs,
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        header=f"{RESULTS}/hidden/{{model}}/{{corpus}}/header.zarr",
    output:
        parts=temp(directory(f"{RESULTS}/parts/{{model}}/{{corpus}}/stream/{{shard}}")),
    log:
        "logs/fused/{model}/{corpus}/{shard}.log",
    benchmark:
        "benchmarks/out/fused/{model}/{corpus}/{shard}.tsv"
    wildcard_constraints:
        model=PLAN.fused_models,
    conda:
        CONDA_ENV
    threads: 8
    resources:
        gpu=PLAN.gpu,
    params:
        spec=PLAN.extract_params,
        plans=PLAN.fused_plans,
        budget_gb=lambda wc: PLAN.extraction(wc.model)["accumulator_budget_gb"],
    script:
        "../scripts/fused_extract.py"
