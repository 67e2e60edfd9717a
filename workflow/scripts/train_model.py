"""Train the run's GPT-2 or ViT and save its checkpoints and loss table (rule train_model)."""

from layergeom.joblog import job_logging
from layergeom.training.train import run_training

with job_logging(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    tokenizer = sm.input.tokenizer[0] if sm.input.tokenizer else None  # a ViT run has none
    run_training(sm.params.run, tokenizer, sm.input.documents, sm.output.checkpoints, sm.output.loss, sm.threads)
