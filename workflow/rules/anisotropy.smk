# Anisotropy (mean pairwise cosine, covariance spectrum) and intrinsic dimension per layer (SPEC.md 2, 3).
# Pass 1 per token shard -> merge (spectrum, means) -> pass 2 per shard (centered cosine) -> table;
# the intrinsic dimension job reads one bounded subsample of every layer.

from layergeom.anisotropy import random_baselines

ANISO = config["anisotropy"]
ANISO_DIR = f"{RESULTS}/anisotropy/{{model}}/{{corpus}}"
ANISO_HIDDEN = f"{RESULTS}/hidden/{{model}}/{{corpus}}"
ANISO_SELECTION = stage_selection("anisotropy")


def anisotropy_shards(pattern):
    """Input function: the pattern for every token shard of the job's model and corpus."""
    return lambda wc: expand(pattern, shard=range(ANISO["shards"]), model=wc.model, corpus=wc.corpus)


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


rule anisotropy_moments:
    input:
        states=f"{ANISO_HIDDEN}/states.zarr",
        tokens=f"{ANISO_HIDDEN}/tokens.parquet",
    output:
        parts=directory(f"{ANISO_DIR}/parts/moments_{{shard}}"),
    wildcard_constraints:
        shard=r"\d+",
    params:
        selection=ANISO_SELECTION,
        shards=ANISO["shards"],
        block_tokens=ANISO["block_tokens"],
    log:
        "logs/anisotropy/{model}/{corpus}/moments_{shard}.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/moments_{shard}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/anisotropy_moments.py"


rule anisotropy_spectrum:
    input:
        states=f"{ANISO_HIDDEN}/states.zarr",
        parts=anisotropy_shards(f"{ANISO_DIR}/parts/moments_{{shard}}"),
    output:
        spectrum=f"{ANISO_DIR}/parts/spectrum.parquet",
        means=f"{ANISO_DIR}/parts/means.npy",
    log:
        "logs/anisotropy/{model}/{corpus}/spectrum.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/spectrum.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/anisotropy_spectrum.py"


rule anisotropy_centered:
    input:
        states=f"{ANISO_HIDDEN}/states.zarr",
        tokens=f"{ANISO_HIDDEN}/tokens.parquet",
        means=f"{ANISO_DIR}/parts/means.npy",
    output:
        part=f"{ANISO_DIR}/parts/centered_{{shard}}.npz",
    wildcard_constraints:
        shard=r"\d+",
    params:
        selection=ANISO_SELECTION,
        shards=ANISO["shards"],
        block_tokens=ANISO["block_tokens"],
    log:
        "logs/anisotropy/{model}/{corpus}/centered_{shard}.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/centered_{shard}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/anisotropy_centered.py"


rule anisotropy_id:
    input:
        states=f"{ANISO_HIDDEN}/states.zarr",
        tokens=f"{ANISO_HIDDEN}/tokens.parquet",
    output:
        table=f"{ANISO_DIR}/parts/id.parquet",
    params:
        selection=ANISO_SELECTION,
        settings=ANISO["id"],
        block_tokens=ANISO["block_tokens"],
    log:
        "logs/anisotropy/{model}/{corpus}/id.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/id.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/anisotropy_id.py"


rule anisotropy_table:
    input:
        states=f"{ANISO_HIDDEN}/states.zarr",
        spectrum=f"{ANISO_DIR}/parts/spectrum.parquet",
        centered=anisotropy_shards(f"{ANISO_DIR}/parts/centered_{{shard}}.npz"),
        id=f"{ANISO_DIR}/parts/id.parquet",
    output:
        table=f"{ANISO_DIR}/layers.parquet",
    params:
        selection=ANISO_SELECTION,
    log:
        "logs/anisotropy/{model}/{corpus}/table.log",
    benchmark:
        "benchmarks/out/anisotropy/{model}/{corpus}/table.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/anisotropy_table.py"


rule anisotropy_figures:
    input:
        tables=anisotropy_tables,
    output:
        anisotropy=report(
            f"{RESULTS}/figures/anisotropy/{{corpus}}/anisotropy.png",
            caption="../report/anisotropy_curves.rst",
            category="Anisotropy",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "anisotropy over depth"},
        ),
        intrinsic_dimension=report(
            f"{RESULTS}/figures/anisotropy/{{corpus}}/intrinsic_dimension.png",
            caption="../report/anisotropy_id.rst",
            category="Anisotropy",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "intrinsic dimension over depth"},
        ),
    params:
        selection=ANISO_SELECTION,
        settings=ANISO["id"],
    log:
        "logs/anisotropy/figures_{corpus}.log",
    benchmark:
        "benchmarks/out/anisotropy/figures_{corpus}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/anisotropy_figures.py"


rule anisotropy_random_figure:
    input:
        tables=anisotropy_tables,
    output:
        figure=report(
            f"{RESULTS}/figures/anisotropy/{{corpus}}/trained_vs_random.png",
            caption="../report/anisotropy_random.rst",
            category="Anisotropy",
            subcategory="{corpus}",
            labels={"corpus": "{corpus}", "figure": "trained versus random init"},
        ),
    params:
        selection=ANISO_SELECTION,
    log:
        "logs/anisotropy/random_{corpus}.log",
    benchmark:
        "benchmarks/out/anisotropy/random_{corpus}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/anisotropy_random_figure.py"


TARGETS += sorted(
    {f"{RESULTS}/figures/anisotropy/{c}/{name}.png" for _, c in PAIRS for name in ("anisotropy", "intrinsic_dimension")}
    | {f"{RESULTS}/figures/anisotropy/{c}/trained_vs_random.png" for _, c in PAIRS if anisotropy_baselines(c)}
)
register_table("anisotropy", rules.anisotropy_table.output.table, "Anisotropy",
               "mean pairwise cosine (uncentered and centered), top singular share and effective rank of the centered "
               "covariance, TwoNN and Levina-Bickel intrinsic dimension (SPEC.md sections 2, 3)", selection=ANISO_SELECTION)
