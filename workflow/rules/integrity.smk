# Integrity: every store and token table is a target (layergeom.dag), so one deleted by hand is rebuilt by the
# next run; `snakemake verify` checks every chunk of every store (checksum, presence, finite values) when asked.


rule verify:
    input:
        states=[PLAN.store_path(m, c) for m, c in PLAN.pairs],
        tokens=[f"{RESULTS}/hidden/{m}/{c}/tokens.parquet" for m, c in PLAN.pairs],
    log:
        "logs/verify.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/verify.py"
