# layergeom: layer-by-layer geometry of transformer hidden states.
# Stages: corpus -> extract -> stream shards -> merges (tables) -> figures -> report (snakemake --report).
# Cross-model tables (tables.smk) collect what the stages register, wherever they are included.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/integrity.smk"
include: "workflow/rules/stream.smk"
include: "workflow/rules/fused.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/norm_variance.smk"
include: "workflow/rules/anisotropy.smk"
include: "workflow/rules/posctx.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/attention.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/findings.smk"


# The landing page: the findings page once the findings rule has written it, else the bare description.
report: FINDINGS_PAGE if os.path.exists(FINDINGS_PAGE) else "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
        table_targets(),
