# Integrity: every store and token table is a target, so one deleted by hand is rebuilt by the next run;
# `snakemake verify` checks every chunk of every store (checksum, presence, finite values) on demand.

HIDDEN = f"{RESULTS}/hidden/{{model}}/{{corpus}}"
TARGETS += [f"{RESULTS}/hidden/{m}/{c}/{name}" for m, c in PAIRS for name in ("states.zarr", "tokens.parquet")]


rule verify_store:
    input:
        states=f"{HIDDEN}/states.zarr",
        tokens=f"{HIDDEN}/tokens.parquet",
    output:
        temp(f"{RESULTS}/verify/{{model}}/{{corpus}}.txt"),
    log:
        "logs/verify/{model}/{corpus}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/verify.py"


rule verify:
    input:
        [f"{RESULTS}/verify/{m}/{c}.txt" for m, c in PAIRS],
