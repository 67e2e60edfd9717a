# Shared setup, no rules: config validation before any job, and the config views of the package (layergeom.dag).

import os
import sys

from snakemake.sourcecache import LocalSourceFile
from snakemake.utils import validate

# The package's code lives in src/ of this repository (found from this file, not from the main Snakefile,
# so that it works when layergeom is a module of another workflow); jobs (local, conda or cluster) import
# it from there. A remote module (github(...)) has no local src/: the package must then be installed.
HERE = workflow.current_basedir
if isinstance(HERE, LocalSourceFile):
    SRC = os.path.normpath(os.path.join(HERE.get_path_or_uri(secret_free=True), "..", "..", "src"))
    sys.path.insert(0, SRC)
    os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, (SRC, os.environ.get("PYTHONPATH")))))

from layergeom import config as lgconfig
from layergeom.dag import Dag
from layergeom.io.shards import SHARD_PATTERN

for warning in lgconfig.apply_deprecations(config):
    logger.warning(f"Deprecated: {warning}")
lgconfig.check_schema(config, workflow.source_path("../schemas/config.schema.yaml"))  # a short error first
validate(config, "../schemas/config.schema.yaml")  # relative to this file; fills in the defaults
# A model entry with `checkpoints` becomes one model per checkpoint (<name>.step_<n> or <name>.<revision>).
config["models"] = lgconfig.expand_checkpoints(config)
lgconfig.check(config)

PLAN = Dag(config, workflow.cores)
RESULTS = PLAN.results
CONDA_ENV = "../../envs/layergeom.yaml"  # relative to the rule files in workflow/rules


wildcard_constraints:
    shard=SHARD_PATTERN,
    model=PLAN.wildcard(PLAN.models),
    corpus=PLAN.wildcard(PLAN.corpora),
    run=PLAN.wildcard(PLAN.train_runs),
