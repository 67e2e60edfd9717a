# Findings: every claim of the four papers judged on the tables (docs/methods.md, Findings), as
# results/findings.md and .csv, and the report's landing page (the workflow description plus the table).
# Included last: it reads what the other rule files register.

FINDINGS = f"{RESULTS}/findings"
FINDINGS_PAGE = os.path.abspath(f"{FINDINGS}.rst")
# Intermediate checkpoints enter the training claims only; the depth claims take the last checkpoint.
INTERMEDIATE = {m for family in CHECKPOINTS.values() for m, _ in family[:-1]}


def table_pairs(analysis):
    """The (model, corpus) pairs a registered analysis has tables for."""
    pairs = TABLES[analysis]["pairs"]
    return PAIRS if pairs is None else pairs


def depth_tables(analysis):
    """(model, corpus) keys and table paths of a registered analysis for the depth claims."""
    pairs = [(m, c) for m, c in table_pairs(analysis) if m not in INTERMEDIATE]
    return [[m, c] for m, c in pairs], [TABLES[analysis]["pattern"].format(model=m, corpus=c) for m, c in pairs]


def training_tables(pattern, pairs):
    """(family, corpus, step) keys and table paths of every checkpoint among `pairs`."""
    steps = {m: (family, s) for family, models in CHECKPOINTS.items() for m, s in models}
    chosen = [(m, c) for m, c in pairs if m in steps]
    return [[steps[m][0], c, steps[m][1]] for m, c in chosen], [pattern.format(model=m, corpus=c) for m, c in chosen]


FINDINGS_TABLES = {
    "norm_variance": depth_tables("norm_variance"),
    "anisotropy": depth_tables("anisotropy"),
    "posctx": depth_tables("posctx"),
    "anisotropy_training": training_tables(TABLES["anisotropy"]["pattern"], table_pairs("anisotropy")),
    "attention": training_tables(TRAINING_MEASURES["attention"][0], ATTENTION_PAIRS),
}
FINDINGS_TOKENS = {
    "norm_variance": describe(**stage_selection("norm_variance")),
    "anisotropy": describe(**ANISO_SELECTION),
    "posctx": describe(**stage_selection("posctx")),
    "attention": describe(**stage_selection("attention")),
    "id_sample": f"intrinsic dimension on the {ANISO['id']['sample']} {ANISO['id']['n_points']} tokens",
}


rule findings:
    input:
        **{name: paths for name, (_, paths) in FINDINGS_TABLES.items()},
        drift=[f"{RESULTS}/dynamics/drift.parquet"] if DRIFT["enabled"] else [],
    output:
        md=f"{FINDINGS}.md",
        rst=f"{FINDINGS}.rst",
        csv=report(
            f"{FINDINGS}.csv",
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
        table_keys={name: keys for name, (keys, _) in FINDINGS_TABLES.items()},
        tokens=FINDINGS_TOKENS,
        intro=open(workflow.source_path("../report/workflow.rst"), encoding="utf-8").read(),
    script:
        "../scripts/findings.py"


TARGETS += [f"{FINDINGS}.md"]
