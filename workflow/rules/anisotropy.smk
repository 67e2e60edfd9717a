# Anisotropy (mean pairwise cosine, covariance spectrum) and intrinsic dimension per layer.
# Pass 1 in the stream shards -> merge (spectrum, means) -> pass 2 per shard (centered cosine) -> table;
# the intrinsic dimension job reads one bounded subsample of every layer.

from layergeom.analyses.anisotropy.metrics import random_baselines

ANISO = config["anisotropy"]
ANISO_DIR = f"{RESULTS}/anisotropy/{{model}}/{{corpus}}"
ANISO_HIDDEN = f"{RESULTS}/hidden/{{model}}/{{corpus}}"
ANISO_SELECTION = stage_selection("anisotropy")


def anisotropy_models(corpus):
    """Models run on a corpus, in config order."""
    return [m for m, c in PAIRS if c == corpus]


def anisotropy_tables(wc):
    """Input function: the per-layer tables of every model on the job's corpus."""
    return [f"{RESULTS}/anisotropy/{m}/{wc.corpus}/layers.parquet" for m in anisotropy_models(wc.corpus)]


def anisotropy_baselines(corpus):
    """(trained, untrained) model pairs on a corpus with the same source and revision."""
    entries = config["models"]
    return random_baselines(
        [(m, entries[m]["source"], entries[m].get("revision"), entries[m]["init"]) for m in anisotropy_models(corpus)]
    )


def anisotropy_centered_parts(wc):
    """Pass-2 shards of a stored pair; none in fused mode (the ID job's sample gives the centered cosine)."""
    return [] if fused(wc.model) else shard_inputs(f"{ANISO_DIR}/parts/centered/{{shard}}")(wc)


register_stream("anisotropy", ANISO_SELECTION, fused=ANISO["id"])


rule anisotropy_spectrum:
    input:
        states=hidden_header,
        tokens=f"{ANISO_HIDDEN}/tokens.parquet",
        parts=stream_parts,
    output:
        spectrum=temp(f"{ANISO_DIR}/parts/spectrum.parquet"),
        means=temp(f"{ANISO_DIR}/parts/means.npy"),
    log:
        "logs/anisotropy/{model}/{corpus}/spectrum.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/spectrum.tsv"
    conda:
        CONDA_ENV
    params:
        selection=ANISO_SELECTION,
    script:
        "../scripts/anisotropy_spectrum.py"


rule anisotropy_centered:
    input:
        states=f"{ANISO_HIDDEN}/states.zarr",
        tokens=f"{ANISO_HIDDEN}/tokens.parquet",
        means=f"{ANISO_DIR}/parts/means.npy",
    output:
        parts=temp(directory(f"{ANISO_DIR}/parts/centered/{{shard}}")),
    log:
        "logs/anisotropy/{model}/{corpus}/centered_{shard}.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/centered_{shard}.tsv"
    wildcard_constraints:
        model=STORED_MODELS,
    conda:
        CONDA_ENV
    params:
        selection=ANISO_SELECTION,
        block_tokens=config["stream"]["block_tokens"],
    script:
        "../scripts/anisotropy_centered.py"


rule anisotropy_id:
    input:
        states=f"{ANISO_HIDDEN}/states.zarr",
        tokens=f"{ANISO_HIDDEN}/tokens.parquet",
    output:
        table=temp(f"{ANISO_DIR}/parts/id.parquet"),
    log:
        "logs/anisotropy/{model}/{corpus}/id.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/id.tsv"
    wildcard_constraints:
        model=STORED_MODELS,
    conda:
        CONDA_ENV
    params:
        selection=ANISO_SELECTION,
        settings=ANISO["id"],
        block_tokens=config["stream"]["block_tokens"],
    script:
        "../scripts/anisotropy_id.py"


# Fused mode: the sample came with the stream partials; its centered cosine stands in for pass 2.
rule anisotropy_id_fused:
    input:
        parts=stream_parts,
        means=f"{ANISO_DIR}/parts/means.npy",
    output:
        table=temp(f"{ANISO_DIR}/parts/id.parquet"),
    log:
        "logs/anisotropy/{model}/{corpus}/id.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/id.tsv"
    wildcard_constraints:
        model=FUSED_MODELS,
    conda:
        CONDA_ENV
    params:
        settings=ANISO["id"],
    script:
        "../scripts/anisotropy_id_fused.py"


rule anisotropy_table:
    input:
        states=hidden_header,
        spectrum=f"{ANISO_DIR}/parts/spectrum.parquet",
        centered=anisotropy_centered_parts,
        id=f"{ANISO_DIR}/parts/id.parquet",
    output:
        table=f"{ANISO_DIR}/layers.parquet",
    log:
        "logs/anisotropy/{model}/{corpus}/table.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/table.tsv"
    conda:
        CONDA_ENV
    params:
        selection=ANISO_SELECTION,
    script:
        "../scripts/anisotropy_table.py"


rule anisotropy_figures:
    input:
        tables=anisotropy_tables,
    output:
        anisotropy=report(
            f"{RESULTS}/figures/anisotropy/{{corpus}}/anisotropy.png",
            caption="../report/anisotropy_curves.rst",
            category="anisotropy",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "anisotropy over depth"},
        ),
        intrinsic_dimension=report(
            f"{RESULTS}/figures/anisotropy/{{corpus}}/intrinsic_dimension.png",
            caption="../report/anisotropy_id.rst",
            category="anisotropy",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "intrinsic dimension over depth"},
        ),
    log:
        "logs/anisotropy/figures_{corpus}.log",
    benchmark:
        "benchmarks/out/anisotropy/figures_{corpus}.tsv"
    conda:
        CONDA_ENV
    params:
        selection=ANISO_SELECTION,
        settings=ANISO["id"],
    script:
        "../scripts/anisotropy_figures.py"


rule anisotropy_random_figure:
    input:
        tables=anisotropy_tables,
    output:
        figure=report(
            f"{RESULTS}/figures/anisotropy/{{corpus}}/trained_vs_random.png",
            caption="../report/anisotropy_random.rst",
            category="anisotropy",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "trained versus random init"},
        ),
    log:
        "logs/anisotropy/random_{corpus}.log",
    benchmark:
        "benchmarks/out/anisotropy/random_{corpus}.tsv"
    conda:
        CONDA_ENV
    params:
        selection=ANISO_SELECTION,
    script:
        "../scripts/anisotropy_random_figure.py"


TARGETS += sorted(
    {f"{RESULTS}/figures/anisotropy/{c}/{name}.png" for _, c in PAIRS for name in ("anisotropy", "intrinsic_dimension")}
    | {f"{RESULTS}/figures/anisotropy/{c}/trained_vs_random.png" for _, c in PAIRS if anisotropy_baselines(c)}
)
register_table(
    "anisotropy",
    rules.anisotropy_table.output.table,
    "mean pairwise cosine (uncentered and centered), top singular share and effective rank of the centered "
    "covariance, TwoNN and Levina-Bickel intrinsic dimension",
    selection=ANISO_SELECTION,
)
