# Extraction stage: every layer's hidden states of one model on one corpus into a Zarr store.
# With extraction.shards K > 1: extract_plan prepares the partial store and token table, K extract_shard jobs
# write their token regions, and extract checks every region and renames the store into place. extract's
# resources are set here, not in the cluster profile, because they depend on K: with K > 1 it needs no model.


rule extract_plan:
    input:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=PLAN.model_inputs,
    output:
        plan=temp(f"{RESULTS}/parts/{{model}}/{{corpus}}/extract/plan.json"),
    log:
        "logs/extract/{model}/{corpus}.plan.log",
    conda:
        CONDA_ENV
    params:
        spec=PLAN.extract_params,
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    script:
        "../scripts/extract_plan.py"


rule extract_shard:
    input:
        plan=f"{RESULTS}/parts/{{model}}/{{corpus}}/extract/plan.json",
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=PLAN.model_inputs,
    output:
        done=temp(f"{RESULTS}/parts/{{model}}/{{corpus}}/extract/{{shard}}.json"),
    log:
        "logs/extract/{model}/{corpus}.{shard}.log",
    benchmark:
        "benchmarks/out/extract/{model}/{corpus}.{shard}.tsv"
    conda:
        CONDA_ENV
    threads: 8
    resources:
        gpu=PLAN.gpu,
    params:
        spec=PLAN.extract_params,
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
    script:
        "../scripts/extract_shard.py"


rule extract:
    input:
        unpack(PLAN.extract_inputs),
    output:
        states=directory(f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr"),
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    log:
        "logs/extract/{model}/{corpus}.log",
    benchmark:
        "benchmarks/out/extract/{model}/{corpus}.tsv"
    wildcard_constraints:
        model=PLAN.stored_models,
    conda:
        CONDA_ENV
    threads: lambda wc: PLAN.extract_resources(wc)["threads"]
    resources:
        gpu=lambda wc: PLAN.extract_resources(wc)["gpu"],
        cpus_per_task=lambda wc: PLAN.extract_resources(wc)["threads"],
        mem_mb=lambda wc, attempt: PLAN.extract_resources(wc, attempt)["mem_mb"],
        runtime=lambda wc, attempt: PLAN.extract_resources(wc, attempt)["runtime"],
    params:
        spec=PLAN.extract_params,
    script:
        "../scripts/extract.py"
