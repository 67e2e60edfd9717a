"""Train the run's byte-level BPE tokenizer on its corpus's documents (rule train_tokenizer)."""

from layergeom.joblog import job_logging
from layergeom.training.train import write_tokenizer

with job_logging(snakemake.log[0]):  # noqa: F821
    write_tokenizer(snakemake.params.run, snakemake.input.documents, snakemake.output.tokenizer)  # noqa: F821
