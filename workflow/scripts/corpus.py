"""Read, split, filter and sample one corpus entry (rule corpus)."""

from layergeom.corpus import build_corpus
from layergeom.io.atomic import write_parquet
from layergeom.joblog import job_logging

with job_logging(snakemake.log[0]):
    documents, sentences = build_corpus(snakemake.params.entry)
    write_parquet(documents, snakemake.output.documents)
    write_parquet(sentences, snakemake.output.sentences)
