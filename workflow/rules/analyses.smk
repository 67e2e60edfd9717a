# The rules every registered analysis gets from its declaration (layergeom/analyses/registry.py): the merge of
# its stream partials per (model, corpus), its figures per pair and per corpus. Its cross-model tables are
# rule table (tables.smk); what an analysis needs beyond these shapes has its own rule file.

for spec in PLAN.streamed():

    rule:
        name:
            f"{spec.name}_merge"
        input:
            states=PLAN.header,
            tokens=f"{RESULTS}/hidden/{{model}}/{{corpus}}/tokens.parquet",
            parts=PLAN.stream_parts,
        output:
            **{
                key: (temp(path) if spec.temporary else directory(path) if path.endswith(".zarr") else path)
                for key, path in PLAN.merge_outputs(spec.name).items()
            },
        log:
            f"logs/{spec.name}/{{model}}/{{corpus}}/merge.log",
        benchmark:
            f"benchmarks/out/{spec.name}/{{model}}/{{corpus}}/merge.tsv"
        conda:
            CONDA_ENV
        params:
            analysis=spec.name,
            settings=PLAN.merge_settings(spec.name),
            selection=PLAN.selection(spec.name),
        script:
            "../scripts/merge.py"


for spec, figures in PLAN.figure_sets("pair"):

    rule:
        name:
            f"{spec.name}_{figures.key}"
        input:
            **PLAN.merge_outputs(spec.name),
        output:
            **{
                figure.key: report(
                    PLAN.pair_figure(spec.name, figure.file),
                    caption=f"../report/{figure.caption}.rst",
                    category=spec.name,
                    subcategory="{corpus}",
                    labels={"model": "{model}", "corpus": "{corpus}", "figure": figure.label},
                )
                for figure in figures.figures
            },
        log:
            f"logs/{spec.name}/{{model}}/{{corpus}}/{figures.key}.log",
        benchmark:
            f"benchmarks/out/{spec.name}/{{model}}/{{corpus}}/{figures.key}.tsv"
        conda:
            CONDA_ENV
        params:
            analysis=spec.name,
            key=figures.key,
            per="pair",
            models=lambda wc: [wc.model],
            facts=PLAN.facts(spec.name),
        script:
            "../scripts/figures.py"


for spec, figures in PLAN.figure_sets("corpus"):

    rule:
        name:
            f"{spec.name}_{figures.key}"
        input:
            tables=PLAN.corpus_tables(spec.name),
        output:
            **{
                figure.key: report(
                    PLAN.corpus_figure(spec.name, figure.file),
                    caption=f"../report/{figure.caption}.rst",
                    category=spec.name,
                    subcategory="{corpus}",
                    labels={"corpus": "{corpus}", "figure": figure.label},
                )
                for figure in figures.figures
            },
        log:
            f"logs/{spec.name}/{figures.key}_{{corpus}}.log",
        benchmark:
            f"benchmarks/out/{spec.name}/{figures.key}_{{corpus}}.tsv"
        conda:
            CONDA_ENV
        params:
            analysis=spec.name,
            key=figures.key,
            per="corpus",
            models=PLAN.corpus_models_of(spec.name),
            facts=PLAN.facts(spec.name),
        script:
            "../scripts/figures.py"
