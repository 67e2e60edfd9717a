# Training stage: a byte-level BPE tokenizer and a small GPT-2 trained on a corpus's documents (or a small ViT
# trained on an image corpus), with checkpoints at log-spaced steps (results/train/{run}/checkpoints/step_{n})
# and a loss curve.


rule train_tokenizer:
    input:
        documents=PLAN.run_documents,
    output:
        tokenizer=directory(f"{RESULTS}/train/{{run}}/tokenizer"),
    log:
        "logs/train/{run}/tokenizer.log",
    benchmark:
        "benchmarks/out/train/{run}/tokenizer.tsv"
    conda:
        CONDA_ENV
    params:
        run=PLAN.tokenizer_settings,
    script:
        "../scripts/train_tokenizer.py"


rule train_model:
    input:
        documents=PLAN.run_documents,
        tokenizer=PLAN.run_tokenizer,
    output:
        checkpoints=directory(f"{RESULTS}/train/{{run}}/checkpoints"),
        loss=f"{RESULTS}/train/{{run}}/loss.parquet",
    log:
        "logs/train/{run}/model.log",
    benchmark:
        "benchmarks/out/train/{run}/model.tsv"
    conda:
        CONDA_ENV
    threads: lambda wc: PLAN.run_threads(wc.run, workflow.cores)
    resources:
        gpu=lambda wc: int(PLAN.train_runs[wc.run]["device"] == "cuda"),
    params:
        run=lambda wc: PLAN.train_runs[wc.run],
    script:
        "../scripts/train_model.py"


rule train_loss_figure:
    input:
        loss=f"{RESULTS}/train/{{run}}/loss.parquet",
    output:
        figure=report(
            PLAN.figure("train", "loss", "{run}"),
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
        run=lambda wc: PLAN.train_runs[wc.run],
    script:
        "../scripts/train_loss_figure.py"
