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
lgconfig.check(config)

RESULTS = config["results"]
CONDA_ENV = os.path.join(workflow.basedir, "envs/layergeom.yaml")
PAIRS = lgconfig.pairs(config)
MODELS = list(config["models"])
CORPORA = list(config["corpora"])

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


# Each stage appends its final outputs here; `rule all` asks for all of them.
TARGETS = []

# Cross-model tables (rules/tables.smk): analysis -> how to find its per-(model, corpus) layer table.
TABLES = {}


def register_table(analysis, pattern, category, what, selection=None, mode=None):
    """Stack every model's `pattern` table per corpus into results/tables/{analysis}/{corpus}.csv/.md/.html."""
    TABLES[analysis] = dict(pattern=str(pattern), category=category, what=what, selection=selection, mode=mode)


def all_targets():
    return TARGETS
