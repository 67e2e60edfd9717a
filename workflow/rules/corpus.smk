# Corpus stage: read a text source, split sentences, filter and sample them.
# Its inputs are the corpus files, so an edited, added or removed file reruns it and all that depends on it.


rule corpus:
    input:
        files=PLAN.corpus_files,
    output:
        documents=f"{RESULTS}/corpus/{{corpus}}/documents.parquet",
        sentences=f"{RESULTS}/corpus/{{corpus}}/sentences.parquet",
    log:
        "logs/corpus/{corpus}.log",
    benchmark:
        "benchmarks/out/corpus/{corpus}.tsv"
    conda:
        CONDA_ENV
    params:
        entry=lambda wc: config["corpora"][wc.corpus],
    script:
        "../scripts/corpus.py"
