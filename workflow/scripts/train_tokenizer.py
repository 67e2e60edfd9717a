"""Train the run's byte-level BPE tokenizer on its corpus's documents (rule train_tokenizer)."""

import polars as pl

from layergeom.io.atomic import atomic_output
from layergeom.joblog import job_logging
from layergeom.train import train_tokenizer

with job_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    run = sm.params.run
    texts = pl.read_parquet(sm.input.documents)["text"].to_list()
    tokenizer = train_tokenizer(texts, run["vocab_size"], run["min_frequency"], run["context_length"])
    log.info("trained a byte-level BPE tokenizer of %d tokens on %d documents", len(tokenizer), len(texts))
    with atomic_output(sm.output.tokenizer) as tmp:
        tokenizer.save_pretrained(tmp)
