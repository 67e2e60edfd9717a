# Anisotropy beyond its merge (analyses.smk: anisotropy_merge writes the spectrum and the layer means): the
# centered pass 2 per stream shard, the intrinsic-dimension sample, and the layer table.


rule anisotropy_centered:
    input:
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        means=f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/parts/means.npy",
    output:
        parts=temp(directory(f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/parts/centered/{{shard}}")),
    log:
        "logs/anisotropy/{model}/{corpus}/centered_{shard}.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/centered_{shard}.tsv"
    wildcard_constraints:
        model=PLAN.stored_models,
    conda:
        CONDA_ENV
    params:
        selection=PLAN.selection("anisotropy"),
        block_tokens=config["stream"]["block_tokens"],
    script:
        "../scripts/anisotropy_centered.py"


rule anisotropy_id:
    input:
        states=f"{RESULTS}/hidden/{{model}}/{{corpus}}/states.zarr",
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
    output:
        table=temp(f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/parts/id.parquet"),
    log:
        "logs/anisotropy/{model}/{corpus}/id.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/id.tsv"
    wildcard_constraints:
        model=PLAN.stored_models,
    conda:
        CONDA_ENV
    params:
        selection=PLAN.selection("anisotropy"),
        settings=config["anisotropy"]["id"],
        block_tokens=config["stream"]["block_tokens"],
    script:
        "../scripts/anisotropy_id.py"


# Fused mode: the sample came with the stream partials; its centered cosine stands in for pass 2.
rule anisotropy_id_fused:
    input:
        parts=PLAN.stream_parts,
        means=f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/parts/means.npy",
    output:
        table=temp(f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/parts/id.parquet"),
    log:
        "logs/anisotropy/{model}/{corpus}/id.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/id.tsv"
    wildcard_constraints:
        model=PLAN.fused_models,
    conda:
        CONDA_ENV
    params:
        settings=config["anisotropy"]["id"],
    script:
        "../scripts/anisotropy_id_fused.py"


rule anisotropy_table:
    input:
        states=PLAN.header,
        spectrum=f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/parts/spectrum.parquet",
        centered=PLAN.centered_parts,
        id=f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/parts/id.parquet",
    output:
        table=f"{RESULTS}/anisotropy/{{model}}/{{corpus}}/layers.parquet",
    log:
        "logs/anisotropy/{model}/{corpus}/table.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/table.tsv"
    conda:
        CONDA_ENV
    params:
        selection=PLAN.selection("anisotropy"),
    script:
        "../scripts/anisotropy_table.py"
