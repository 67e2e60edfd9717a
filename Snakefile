# layergeom: layer-by-layer geometry of transformer hidden states.
# Stages: corpus -> extract -> stream shards -> merges (tables) -> figures -> report (snakemake --report).
# The analyses and what each needs are declared once, in src/layergeom/analyses/registry.py; the rule files
# hold rules only, their config views are layergeom.dag (workflow/rules/common.smk).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/integrity.smk"
include: "workflow/rules/stream.smk"
include: "workflow/rules/fused.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/anisotropy.smk"
include: "workflow/rules/dimensions.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/findings.smk"


# The landing page: the findings page once the findings rule has written it, else the bare description.
report: PLAN.landing_page("workflow/report/workflow.rst")


rule all:
    default_target: True
    input:
        PLAN.targets(),
