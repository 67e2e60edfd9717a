# Extraction stage: every layer's hidden states of one model on one corpus into a Zarr store.


rule extract:
    input:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=lambda wc: model_inputs(wc.model),
    output:
        states=directory(f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr"),
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    log:
        "logs/extract/{model}/{corpus}.log",
    benchmark:
        "benchmarks/out/extract/{model}/{corpus}.tsv"
    wildcard_constraints:
        model=STORED_MODELS,
    conda:
        CONDA_ENV
    threads: 8
    resources:
        gpu=lambda wc: int(lgconfig.extraction_settings(config, wc.model)["device"] == "cuda"),
    params:
        spec=extract_params,
    script:
        "../scripts/extract.py"
