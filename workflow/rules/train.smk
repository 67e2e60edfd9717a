# Training stage: a byte-level BPE tokenizer and a small GPT-2 trained on a corpus's documents, with
# checkpoints at log-spaced steps (results/train/{run}/checkpoints/step_{n}) and a loss curve.

TRAIN_RUNS = config["training"]["runs"]
TRAIN_DIR = f"{RESULTS}/train/{{run}}"
TOKENIZER_KEYS = ("corpus", "vocab_size", "min_frequency", "context_length")


wildcard_constraints:
    run="|".join(map(re.escape, TRAIN_RUNS)) or "[^/]+",


def train_documents(wc):
    """The documents table of the run's corpus."""
    return f"{RESULTS}/corpus/{TRAIN_RUNS[wc.run]['corpus']}/documents.parquet"


rule train_tokenizer:
    input:
        documents=train_documents,
    output:
        tokenizer=directory(f"{TRAIN_DIR}/tokenizer"),
    log:
        "logs/train/{run}/tokenizer.log",
    benchmark:
        "benchmarks/out/train/{run}/tokenizer.tsv"
    conda:
        CONDA_ENV
    params:
        run=lambda wc: {k: TRAIN_RUNS[wc.run][k] for k in TOKENIZER_KEYS},
    script:
        "../scripts/train_tokenizer.py"


rule train_model:
    input:
        documents=train_documents,
        tokenizer=f"{TRAIN_DIR}/tokenizer",
    output:
        checkpoints=directory(f"{TRAIN_DIR}/checkpoints"),
        loss=f"{TRAIN_DIR}/loss.parquet",
    log:
        "logs/train/{run}/model.log",
    benchmark:
        "benchmarks/out/train/{run}/model.tsv"
    conda:
        CONDA_ENV
    threads: workflow.cores
    resources:
        gpu=lambda wc: int(TRAIN_RUNS[wc.run]["device"] == "cuda"),
    params:
        run=lambda wc: TRAIN_RUNS[wc.run],
    script:
        "../scripts/train_model.py"


rule train_loss_figure:
    input:
        loss=f"{TRAIN_DIR}/loss.parquet",
    output:
        figure=report(
            f"{RESULTS}/figures/train/{{run}}/loss.png",
            caption="../report/train_loss.rst",
            category="train",
            subcategory="{run}",
            labels={"run": "{run}", "figure": "loss curve"},
        ),
    log:
        "logs/train/{run}/loss_figure.log",
    benchmark:
        "benchmarks/out/train/{run}/loss_figure.tsv"
    conda:
        CONDA_ENV
    params:
        run=lambda wc: TRAIN_RUNS[wc.run],
    script:
        "../scripts/train_loss_figure.py"


TARGETS += [f"{RESULTS}/figures/train/{run}/loss.png" for run in TRAIN_RUNS]
