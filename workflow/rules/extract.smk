# Extraction stage: every layer's hidden states of one model on one corpus into a Zarr store.
# With extraction.shards K > 1: extract_plan prepares the partial store and token table, K extract_shard jobs
# write their token regions, and extract checks every region and renames the store into place. extract's
# resources are set here, not in the cluster profile, because they depend on K: with K > 1 it needs no model.


def extraction_shards(model):
    """Extraction shard count K of a model (extraction.shards with the model's override)."""
    return lgconfig.extraction_settings(config, model)["shards"]


def extract_inputs(wc):
    """Inputs of rule extract: the corpus and model, and with K > 1 the plan and every shard's done file."""
    inputs = dict(
        documents=f"{RESULTS}/corpus/{wc.corpus}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{wc.corpus}/sentences.parquet",
        model=model_inputs(wc.model),
    )
    shards = extraction_shards(wc.model)
    if shards > 1:
        parts = f"{RESULTS}/parts/{wc.model}/{wc.corpus}/extract"
        inputs.update(plan=f"{parts}/plan.json", shards=[f"{parts}/{s}.json" for s in shard_ids(shards)])
    return inputs


def extract_runs_model(wc):
    """Whether rule extract runs the model (K = 1) rather than only checking the K shards' regions."""
    return extraction_shards(wc.model) == 1


def extract_gpu(wc):
    """One GPU for a job that runs the model when extraction runs on CUDA."""
    return int(lgconfig.extraction_settings(config, wc.model)["device"] == "cuda")


rule extract_plan:
    input:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=lambda wc: model_inputs(wc.model),
    output:
        plan=temp(f"{RESULTS}/parts/{{model}}/{{corpus}}/extract/plan.json"),
    log:
        "logs/extract/{model}/{corpus}.plan.log",
    conda:
        CONDA_ENV
    params:
        spec=extract_params,
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    script:
        "../scripts/extract_plan.py"


rule extract_shard:
    input:
        plan=f"{RESULTS}/parts/{{model}}/{{corpus}}/extract/plan.json",
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
        model=lambda wc: model_inputs(wc.model),
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
        gpu=extract_gpu,
    params:
        spec=extract_params,
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
    script:
        "../scripts/extract_shard.py"


rule extract:
    input:
        unpack(extract_inputs),
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
    threads: lambda wc: 8 if extract_runs_model(wc) else 1
    resources:
        gpu=lambda wc: extract_gpu(wc) if extract_runs_model(wc) else 0,
        cpus_per_task=lambda wc: 8 if extract_runs_model(wc) else 1,
        mem_mb=lambda wc, attempt: (16000 if extract_runs_model(wc) else 2000) * attempt,
        runtime=lambda wc, attempt: (240 if extract_runs_model(wc) else 30) * attempt,
    params:
        spec=extract_params,
    script:
        "../scripts/extract.py"
