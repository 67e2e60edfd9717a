"""The steps of docs/architecture.md, 'Adding an analysis', work as written: its code blocks become a new
analysis (one folder and one registry line) in a copy of the workflow, which runs on the tiny config in store
and in fused mode and gives the expected table; and the package's imports run downward only."""

import ast
import re
import shutil

import numpy as np
import polars as pl
import pytest
import yaml
from runs import ROOT, snakemake

from layergeom.io.store import open_hidden, read_tokens
from layergeom.stream.selection import token_mask

PACKAGE = ROOT / "src" / "layergeom"


def doc_blocks() -> list[str]:
    """The python code blocks of the 'Adding an analysis' section, dedented."""
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Adding an analysis")[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return ["\n".join(line[3:] for line in block.splitlines()) + "\n" for block in blocks]


def add_max_norm(repo):
    """The doc's three files in ``analyses/max_norm/`` and its line in the registry."""
    accumulate, merge, declaration = doc_blocks()
    package = repo / "src" / "layergeom" / "analyses" / "max_norm"
    package.mkdir()
    for name, text in (("accumulate", accumulate), ("merge", merge), ("__init__", declaration)):
        (package / f"{name}.py").write_text(text)
    registry = repo / "src" / "layergeom" / "analyses" / "registry.py"
    text = registry.read_text()
    spec = "from layergeom.analyses.spec import Analysis\n"
    assert spec in text and "        posctx.ANALYSIS,\n" in text
    text = text.replace(spec, "from layergeom.analyses import max_norm\n" + spec, 1)
    registry.write_text(
        text.replace("        posctx.ANALYSIS,\n", "        posctx.ANALYSIS,\n        max_norm.ANALYSIS,\n")
    )


@pytest.mark.slow
def test_a_new_analysis_is_one_folder_and_one_registry_line(tmp_path, text_corpus, tiny_bert):
    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("Snakefile", "workflow", "src", "config", "envs"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, repo / part)
    add_max_norm(repo)
    tables = {}
    for mode in ("all", "none"):
        work = tmp_path / mode
        work.mkdir()
        config = {
            "corpora": {"docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 10}}},
            "models": {"bert": {"source": str(tiny_bert), "extraction": {"store": mode}}},
            "extraction": {"chunk_tokens": 32, "batch_tokens": 128, "dtype": "float32"},
            "stream": {"shards": 2},
        }
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        done = snakemake(work, "results/tables/max_norm/docs.csv", snakefile=repo / "Snakefile")
        assert done.returncode == 0, done.stderr[-3000:]
        tables[mode] = pl.read_csv(work / "results" / "tables" / "max_norm" / "docs.csv")

    hidden = tmp_path / "all" / "results" / "hidden" / "bert" / "docs"
    array = open_hidden(hidden / "states.zarr")
    keep = token_mask(read_tokens(hidden / "tokens.parquet"))
    want = [np.linalg.norm(np.asarray(array[i], dtype=np.float64)[keep], axis=1).max() for i in range(array.shape[0])]
    for mode, table in tables.items():
        assert table["model"].to_list() == ["bert"] * array.shape[0], mode
        np.testing.assert_allclose(table["max_norm"].to_numpy(), want, rtol=1e-12 if mode == "all" else 1e-6)
        assert table["relative_depth"].to_list() == [0.0, 0.5, 1.0]


# Subpackages in the order they may import each other (each only the ones before it), and the top-level modules.
LAYERS = ["io", "stats", "stream", "findings", "extraction", "training", "analyses"]


def imports_of(path) -> set[str]:
    """The layergeom modules a file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("layergeom"):
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return names


def test_imports_run_downward_and_no_analysis_imports_another():
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(loose) <= 5, loose
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) == 1:
            continue
        level = LAYERS.index(parts[0])
        for name in imports_of(path):
            target = (name.split(".") + [""])[1]
            if target in LAYERS:
                assert LAYERS.index(target) <= level, f"{path} imports {name}"
            if parts[0] == "analyses" and len(parts) > 2 and name.startswith("layergeom.analyses."):
                other = name.split(".")[2]
                assert other in (parts[1], "spec"), f"{path} imports another analysis: {name}"


def test_rule_files_hold_rules_only():
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = path.read_text()
        assert not re.search(r"^\s*def ", text, re.M), path
        if path.name != "common.smk":
            assert not re.search(r"^\s*(from|import) layergeom", text, re.M), path


def test_merge_and_table_jobs_import_no_plotting_or_model_code():
    """A job that merges or tabulates (most of a run's jobs) starts without matplotlib, torch or scipy.stats: each
    would add a third of a second to seconds to every such job."""
    import subprocess
    import sys

    code = "import sys, layergeom.analyses.jobs; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert not loaded & {"matplotlib", "torch", "scipy.stats", "transformers"}
