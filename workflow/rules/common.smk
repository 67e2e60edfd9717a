# Shared setup: config validation before any job, paths of the results layout, target lists.

import os
import re
import sys
from pathlib import Path

from snakemake.sourcecache import LocalSourceFile
from snakemake.utils import validate

# The package's code lives in src/ of this repository (found from this file, not from the main Snakefile,
# so that it works when layergeom is a module of another workflow); jobs (local, conda or cluster) import
# it from there. A remote module (github(...)) has no local src/: the package must then be installed.
HERE = workflow.current_basedir
if isinstance(HERE, LocalSourceFile):
    SRC = os.path.normpath(os.path.join(HERE.get_path_or_uri(secret_free=True), "..", "..", "src"))
    sys.path.insert(0, SRC)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from layergeom import config as lgconfig
from layergeom.fingerprint import model_files
from layergeom.sources import resolve_source
from layergeom.stream.shards import SHARD_PATTERN, shard_ids

for warning in lgconfig.apply_deprecations(config):
    logger.warning(f"Deprecated: {warning}")
validate(config, "../schemas/config.schema.yaml")  # relative to this file
# A model entry with `checkpoints` becomes one model per checkpoint (<name>.step_<n> or <name>.<revision>).
config["models"] = lgconfig.expand_checkpoints(config)
lgconfig.check(config)

RESULTS = config["results"]
CONDA_ENV = "../../envs/layergeom.yaml"  # relative to the rule files in workflow/rules
PAIRS = lgconfig.pairs(config)
MODELS = list(config["models"])
CORPORA = list(config["corpora"])
CHECKPOINTS = lgconfig.checkpoint_families(config)  # family -> [(model, step), ...]


wildcard_constraints:
    shard=SHARD_PATTERN,
    model="|".join(map(re.escape, MODELS)) if MODELS else "[^/]+",
    corpus="|".join(map(re.escape, CORPORA)) if CORPORA else "[^/]+",


def corpus_mode(corpus):
    """Sequence mode (sentences or contexts) of a corpus entry."""
    return config["corpora"][corpus]["sequences"]["mode"]


def fused(model):
    """Whether a model's extraction is fused (extraction.store: none): no store, partials from the forward pass."""
    return lgconfig.extraction_settings(config, model)["store"] == "none"


def model_pattern(models):
    """Wildcard regex matching exactly the names `models` (and nothing when there are none)."""
    return "|".join(map(re.escape, models)) if models else "(?!)"


# Rules that read a store take the stored models; their fused counterparts the others (rules/fused.smk).
STORED_MODELS = model_pattern([m for m in MODELS if not fused(m)])
FUSED_MODELS = model_pattern([m for m in MODELS if fused(m)])


def store_path(model, corpus):
    """A pair's store: states.zarr, or in fused mode its header.zarr (layer names and attributes, no tokens)."""
    return f"{RESULTS}/hidden/{model}/{corpus}/{'header' if fused(model) else 'states'}.zarr"


def hidden_header(wc):
    """What a merge reads the layer names and attributes from: the pair's store or header."""
    return store_path(wc.model, wc.corpus)


def extract_params(wc):
    """Everything extraction depends on; a change here reruns the job."""
    return {
        "model": {k: v for k, v in config["models"][wc.model].items() if k != "corpora"},
        "corpus": config["corpora"][wc.corpus],
        "settings": extraction_params(wc.model),
    }


# Extraction keys that change no stored or accumulated number (the mode picks the rules; the budget only
# groups layers), so they are no job's params: a store-mode extraction does not rerun when they are added.
NOT_HASHED = ("store", "accumulator_budget_gb")


def extraction_params(model):
    """A model's extraction settings as job params: those that change numbers."""
    return {k: v for k, v in lgconfig.extraction_settings(config, model).items() if k not in NOT_HASHED}


def model_inputs(model):
    """Files a model is loaded from: its training run's checkpoints, or its local files (edits rerun extraction)."""
    entry = config["models"][model]
    run = (entry.get("checkpoint") or {}).get("run")
    if run:
        return [f"{RESULTS}/train/{run}/checkpoints"]
    files = model_files(resolve_source(entry["source"], entry.get("gguf_file")))
    return [str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p) for p in files]


def stage_selection(section):
    """Token selection of a stage: the `selection` section with the stage's non-null overrides applied."""
    own = config[section]
    return {
        key: config["selection"][key] if own.get(key) is None else own[key]
        for key in ("include_special", "exclude_first_position")
    }


# Each stage appends its final outputs here; `rule all` asks for all of them.
TARGETS = []

# Analyses fed by the stream shards (rules/stream.smk): analysis -> (token selection, pairs it covers).
STREAMED = {}
SHARDS = shard_ids(config["stream"]["shards"])


def register_stream(analysis, selection, pairs=None, fused=None):
    """Feed `analysis` (a package folder with accumulate.feeds) from the stream shards of `pairs` (default all).

    `fused`: the settings of its accumulate.fused_feeds, what it also takes from a fused extraction."""
    STREAMED[analysis] = dict(selection=selection, pairs=PAIRS if pairs is None else pairs, fused=fused)


def stream_plans(wc):
    """Params of a stream job: the token selection of every analysis streamed for its pair."""
    return {name: spec["selection"] for name, spec in STREAMED.items() if (wc.model, wc.corpus) in spec["pairs"]}


def fused_plans(wc):
    """Params of a fused extraction job: every streamed analysis' selection and fused settings for its pair."""
    return {
        name: dict(selection=spec["selection"], fused=spec["fused"])
        for name, spec in STREAMED.items()
        if (wc.model, wc.corpus) in spec["pairs"]
    }


def pair_shards(model):
    """Token shards of a model's stream partials: stream.shards, or in fused mode its extraction shards."""
    return shard_ids(lgconfig.extraction_settings(config, model)["shards"]) if fused(model) else SHARDS


def shard_inputs(pattern):
    """Input function: `pattern` for every token shard of the job's model and corpus."""
    return lambda wc: expand(pattern, shard=pair_shards(wc.model), model=wc.model, corpus=wc.corpus)


# The stream shard folders of a pair (rules/stream.smk), the input of every streamed analysis' merge.
stream_parts = shard_inputs(f"{RESULTS}/parts/{{model}}/{{corpus}}/stream/{{shard}}")

# Cross-model tables (rules/tables.smk): analysis -> how to find its per-(model, corpus) layer table.
TABLES = {}


def register_table(analysis, pattern, what, selection=None, pairs=None):
    """Stack every model's `pattern` table per corpus into results/tables/{analysis}/{corpus}.csv/.md/.html.

    `pairs` are the (model, corpus) pairs the analysis covers (default: all); the report category is `analysis`."""
    TABLES[analysis] = dict(pattern=str(pattern), what=what, selection=selection, pairs=pairs)


def all_targets():
    return TARGETS
