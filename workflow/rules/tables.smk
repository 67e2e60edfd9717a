# Cross-model tables: for every analysis registered with register_table (common.smk), every model's
# per-layer table on one corpus stacked with model, corpus and relative depth, as CSV, Markdown and HTML.

from layergeom.stream.selection import describe

TABLES_DIR = f"{RESULTS}/tables"


def table_models(analysis, corpus):
    """Models that have a table of `analysis` on `corpus`."""
    if analysis not in TABLES:
        raise ValueError(f"no table registered for analysis '{analysis}' (known: {sorted(TABLES)})")
    pairs = TABLES[analysis]["pairs"]
    return [m for m, c in (PAIRS if pairs is None else pairs) if c == corpus]


def table_targets():
    """The CSV of every registered analysis on every corpus it covers (the .md and .html come with it)."""
    return [f"{TABLES_DIR}/{a}/{c}.csv" for a in sorted(TABLES) for c in CORPORA if table_models(a, c)]


def table_spec(wc):
    """What the caption and page say; only this analysis's entry, so a change elsewhere never reruns it."""
    spec = TABLES[wc.analysis]
    sel = spec["selection"]
    tokens = describe(sel["include_special"], sel["exclude_first_position"]) if sel else None
    return {"what": spec["what"], "tokens": tokens}


def table_report(path, fmt):
    """A table file marked for the report, under its analysis's category."""
    return report(
        path,
        caption="../report/table.rst",
        category="{analysis}",
        subcategory="{corpus}",
        labels={"corpus": "{corpus}", "figure": f"layer table ({fmt})"},
    )


rule table:
    input:
        tables=lambda wc: [
            TABLES[wc.analysis]["pattern"].format(model=m, corpus=wc.corpus)
            for m in table_models(wc.analysis, wc.corpus)
        ],
    output:
        csv=table_report(f"{TABLES_DIR}/{{analysis}}/{{corpus}}.csv", "CSV"),
        md=f"{TABLES_DIR}/{{analysis}}/{{corpus}}.md",
        html=table_report(f"{TABLES_DIR}/{{analysis}}/{{corpus}}.html", "HTML"),
    log:
        "logs/tables/{analysis}/{corpus}.log",
    benchmark:
        "benchmarks/out/tables/{analysis}/{corpus}.tsv"
    wildcard_constraints:
        analysis=r"[A-Za-z0-9_]+",
    conda:
        CONDA_ENV
    params:
        models=lambda wc: table_models(wc.analysis, wc.corpus),
        spec=table_spec,
    script:
        "../scripts/tables_collect.py"
