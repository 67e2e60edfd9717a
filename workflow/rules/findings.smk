# Findings: the claims of every registered analysis judged on its tables (docs/methods.md, Findings), as
# results/findings.md and .csv, and the report's landing page (the workflow description plus the table).


rule findings:
    input:
        **{name: paths for name, (_, paths) in PLAN.evidence().items()},
        drift=PLAN.drift_table(),
    output:
        md=f"{RESULTS}/findings.md",
        rst=f"{RESULTS}/findings.rst",
        csv=report(
            f"{RESULTS}/findings.csv",
            caption="../report/findings.rst",
            category="findings",
            labels={"figure": "findings table"},
        ),
    log:
        "logs/findings.log",
    benchmark:
        "benchmarks/out/findings.tsv"
    conda:
        CONDA_ENV
    params:
        table_keys={name: keys for name, (keys, _) in PLAN.evidence().items()},
        facts=PLAN.claim_facts(),
        intro=open(workflow.source_path("../report/workflow.rst"), encoding="utf-8").read(),
    script:
        "../scripts/findings.py"
