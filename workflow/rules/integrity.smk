# Integrity: every store and token table is a target, so one deleted by hand is rebuilt by the next run;
# `snakemake verify` checks every chunk of every store (checksum, presence, finite values) each time it is asked.

HIDDEN = [f"{RESULTS}/hidden/{m}/{c}" for m, c in PAIRS]
TARGETS += [f"{folder}/{name}" for folder in HIDDEN for name in ("states.zarr", "tokens.parquet")]


rule verify:
    input:
        states=[f"{folder}/states.zarr" for folder in HIDDEN],
        tokens=[f"{folder}/tokens.parquet" for folder in HIDDEN],
    log:
        "logs/verify.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/verify.py"
