"""Train the run's GPT-2 and save its checkpoints and loss table (rule train_model)."""

import polars as pl
import torch
from transformers import AutoTokenizer

from layergeom.io.atomic import write_parquet
from layergeom.joblog import job_logging
from layergeom.train import prepare_data, train

with job_logging(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    run = sm.params.run
    torch.set_num_threads(max(1, sm.threads))
    tokenizer = AutoTokenizer.from_pretrained(sm.input.tokenizer)
    data = prepare_data(tokenizer, pl.read_parquet(sm.input.documents), run)
    table = train(run, tokenizer, data, sm.output.checkpoints, run["device"])
    log.info("final training loss %.4f, held-out loss %s", table["loss"][-1], table["eval_loss"][-1])
    write_parquet(table, sm.output.loss)
