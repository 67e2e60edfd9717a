# Position and context decomposition of every contexts-mode store:
# sums per position and context in the stream shards -> merge (components.zarr, layers.parquet) -> figures.

from layergeom.stream.selection import describe

POSCTX = config["posctx"]
POSCTX_DIR = f"{RESULTS}/posctx/{{model}}/{{corpus}}"
POSCTX_FIG = f"{RESULTS}/figures/posctx"
POSCTX_PAIRS = [(m, c) for m, c in PAIRS if corpus_mode(c) == "contexts"]


def posctx_caption_params():
    """Facts the figure captions state."""
    facts = {k: POSCTX[k] for k in ("ctx_components", "smoothness_cutoff", "screenot_max_rank")}
    facts["selection"] = describe(**stage_selection("posctx"))
    return facts


register_stream("posctx", stage_selection("posctx"), POSCTX_PAIRS)


rule posctx_merge:
    input:
        states=hidden_header,
        tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
        parts=stream_parts,
    output:
        components=directory(f"{POSCTX_DIR}/components.zarr"),
        table=f"{POSCTX_DIR}/layers.parquet",
    log:
        "logs/posctx/{model}/{corpus}/merge.log",
    benchmark:
        "benchmarks/out/posctx/{model}/{corpus}/merge.tsv"
    conda:
        CONDA_ENV
    params:
        selection=stage_selection("posctx"),
        settings={k: POSCTX[k] for k in ("screenot_max_rank", "ctx_components", "smoothness_cutoff", "seed")},
    script:
        "../scripts/posctx_merge.py"


def posctx_figure(name, caption, what):
    """A per-(model, corpus) figure marked for the report."""
    return report(
        f"{POSCTX_FIG}/{{model}}/{{corpus}}/{name}.png",
        caption=f"../report/{caption}.rst",
        category="posctx",
        subcategory="{corpus}",
        labels={"model": "{model}", "corpus": "{corpus}", "figure": what},
    )


rule posctx_figures:
    input:
        components=f"{POSCTX_DIR}/components.zarr",
    output:
        pca2=posctx_figure("pos_pca2", "posctx_pca", "pos on top 2 directions"),
        pca3=posctx_figure("pos_pca3", "posctx_pca", "pos on top 3 directions"),
        gram=posctx_figure("pos_gram", "posctx_gram", "pos cosine Gram"),
        ctx_cos=posctx_figure("ctx_cosines", "posctx_ctx_cosines", "ctx cosines by topic"),
        pos_ctx_cos=posctx_figure("pos_ctx_cosines", "posctx_pos_ctx_cosines", "pos-ctx cosines"),
    log:
        "logs/posctx/{model}/{corpus}/figures.log",
    benchmark:
        "benchmarks/out/posctx/{model}/{corpus}/figures.tsv"
    conda:
        CONDA_ENV
    params:
        caption=posctx_caption_params(),
    script:
        "../scripts/posctx_figures.py"


rule posctx_layers_figure:
    input:
        tables=lambda wc: [f"{RESULTS}/posctx/{m}/{wc.corpus}/layers.parquet" for m, c in PAIRS if c == wc.corpus],
    output:
        figure=report(
            f"{POSCTX_FIG}/{{corpus}}/layers.png",
            caption="../report/posctx_layers.rst",
            category="posctx",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "posctx over layers"},
        ),
    log:
        "logs/posctx/figure_{corpus}.log",
    benchmark:
        "benchmarks/out/posctx/figure_{corpus}.tsv"
    conda:
        CONDA_ENV
    params:
        models=lambda wc: [m for m, c in PAIRS if c == wc.corpus],
        caption=posctx_caption_params(),
    script:
        "../scripts/posctx_layers_figure.py"


TARGETS += [f"{POSCTX_FIG}/{m}/{c}/pos_pca2.png" for m, c in POSCTX_PAIRS]
TARGETS += sorted({f"{POSCTX_FIG}/{c}/layers.png" for _, c in PAIRS if corpus_mode(c) == "contexts"})
register_table(
    "posctx",
    rules.posctx_merge.output.table,
    "h = mu + pos + ctx + resid per layer: variance shares, ranks, relative norms, "
    "smoothness, context cosines, incoherence",
    selection=stage_selection("posctx"),
    pairs=POSCTX_PAIRS,
)
