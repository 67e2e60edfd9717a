# Shared setup: config validation before any job, paths of the results layout, target lists.

import os
import re
import sys

from snakemake.utils import validate

# The package's code lives in src/; jobs (local, conda or cluster) import it from there.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from layergeom import config as lgconfig

validate(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))
# A model entry with `checkpoints` becomes one model per checkpoint (<name>.step_<n> or <name>.<revision>).
config["models"] = lgconfig.expand_checkpoints(config)
lgconfig.check(config)

RESULTS = config["results"]
CONDA_ENV = os.path.join(workflow.basedir, "envs/layergeom.yaml")
PAIRS = lgconfig.pairs(config)
MODELS = list(config["models"])
CORPORA = list(config["corpora"])
CHECKPOINTS = lgconfig.checkpoint_families(config)  # family -> [(model, step), ...]

wildcard_constraints:
    model="|".join(map(re.escape, MODELS)) if MODELS else "[^/]+",
    corpus="|".join(map(re.escape, CORPORA)) if CORPORA else "[^/]+",


def corpus_mode(corpus):
    """Sequence mode (sentences or contexts) of a corpus entry."""
    return config["corpora"][corpus]["sequences"]["mode"]


def pair_paths(pattern, mode=None):
    """Expand a path pattern with {model} and {corpus} over the configured pairs."""
    return [
        pattern.format(model=m, corpus=c)
        for m, c in PAIRS
        if mode is None or corpus_mode(c) == mode
    ]


def extract_params(wc):
    """Everything extraction depends on; a change here reruns the job."""
    return {
        "model": {k: v for k, v in config["models"][wc.model].items() if k != "corpora"},
        "corpus": config["corpora"][wc.corpus],
        "settings": lgconfig.extraction_settings(config, wc.model),
    }


def model_inputs(model):
    """Workflow outputs a model is loaded from: its training run's checkpoints, if it is one."""
    run = (config["models"][model].get("checkpoint") or {}).get("run")
    return [f"{RESULTS}/train/{run}/checkpoints"] if run else []


def stage_selection(section):
    """Token selection of a stage: the `selection` section with the stage's non-null overrides applied."""
    own = config[section]
    return {
        key: config["selection"][key] if own.get(key) is None else own[key]
        for key in ("include_special", "exclude_first_position")
    }


# Each stage appends its final outputs here; `rule all` asks for all of them.
TARGETS = []

# Cross-model tables (rules/tables.smk): analysis -> how to find its per-(model, corpus) layer table.
TABLES = {}


def register_table(analysis, pattern, category, what, selection=None, pairs=None):
    """Stack every model's `pattern` table per corpus into results/tables/{analysis}/{corpus}.csv/.md/.html.

    `pairs` are the (model, corpus) pairs the analysis covers (default: all)."""
    TABLES[analysis] = dict(pattern=str(pattern), category=category, what=what, selection=selection, pairs=pairs)


def all_targets():
    return TARGETS
