# One streaming pass per token shard of a store feeds every streamed analysis of the registry that covers the
# pair: one read of each block for all of them, and one scatter for analyses that select the same tokens.
# The partial accumulators are temporary (keep them: --notemp).


rule stream:
    input:
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    output:
        parts=temp(directory(f"{RESULTS}/parts/{{model}}/{{corpus}}/stream/{{shard}}")),
    log:
        "logs/stream/{model}/{corpus}/{shard}.log",
    benchmark:
        "benchmarks/out/stream/{model}/{corpus}/{shard}.tsv"
    wildcard_constraints:
        model=PLAN.stored_models,
    conda:
        CONDA_ENV
    params:
        plans=PLAN.stream_plans,
        block_tokens=config["stream"]["block_tokens"],
    script:
        "../scripts/stream.py"
