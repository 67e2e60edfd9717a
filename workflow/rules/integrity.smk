# Integrity: every store and token table is a target, so one deleted by hand is rebuilt by the next run;
# `snakemake verify` checks every chunk of every store (checksum, presence, finite values) each time it is asked.

HIDDEN = [f"{RESULTS}/hidden/{m}/{c}" for m, c in PAIRS]
STORES = [store_path(m, c) for m, c in PAIRS]
TARGETS += STORES + [f"{folder}/tokens.parquet" for folder in HIDDEN]


rule verify:
    input:
        states=STORES,
        tokens=[f"{folder}/tokens.parquet" for folder in HIDDEN],
    log:
        "logs/verify.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/verify.py"
