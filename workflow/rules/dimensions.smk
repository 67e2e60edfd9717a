# Dimensions beyond its merge (analyses.smk: dimensions_merge writes the pass-1 measures and each layer's mean and
# scale): the standardized pass 2 per stream shard of a store, and the layer and top-dimension tables.


rule dimensions_standardized:
    input:
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        standardize=f"{RESULTS}/dimensions/{{model}}/{{corpus}}/parts/standardize.npy",
    output:
        parts=temp(directory(f"{RESULTS}/dimensions/{{model}}/{{corpus}}/parts/standardized/{{shard}}")),
    log:
        "logs/dimensions/{model}/{corpus}/standardized_{shard}.log",
    benchmark:
        "benchmarks/out/dimensions/{model}/{corpus}/standardized_{shard}.tsv"
    wildcard_constraints:
        model=PLAN.stored_models,
    conda:
        CONDA_ENV
    params:
        selection=PLAN.selection("dimensions"),
        block_tokens=config["stream"]["block_tokens"],
    script:
        "../scripts/dimensions_standardized.py"


# Fused mode has no store to pass over again: the sample in the stream partials gives the standardized cosine.
rule dimensions_table:
    input:
        states=PLAN.header,
        layers=f"{RESULTS}/dimensions/{{model}}/{{corpus}}/parts/layers.parquet",
        standardize=f"{RESULTS}/dimensions/{{model}}/{{corpus}}/parts/standardize.npy",
        standardized=PLAN.second_pass_parts("dimensions", "standardized"),
        samples=PLAN.fused_stream_parts,
    output:
        table=f"{RESULTS}/dimensions/{{model}}/{{corpus}}/layers.parquet",
        top=f"{RESULTS}/dimensions/{{model}}/{{corpus}}/top_dimensions.parquet",
    log:
        "logs/dimensions/{model}/{corpus}/table.log",
    benchmark:
        "benchmarks/out/dimensions/{model}/{corpus}/table.tsv"
    conda:
        CONDA_ENV
    params:
        selection=PLAN.selection("dimensions"),
        top_k=config["dimensions"]["top_k"],
    script:
        "../scripts/dimensions_table.py"
