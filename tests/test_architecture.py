"""The steps of docs/architecture.md, 'Adding an analysis', work as written: its code blocks become a new
analysis in a copy of the workflow, which runs on the tiny config and gives the expected table."""

import re
import shutil

import numpy as np
import polars as pl
import yaml
from runs import ROOT, snakemake

from layergeom.io.store import open_hidden, read_tokens
from layergeom.stream.selection import token_mask

ADAPTER = """from layergeom.analyses.max_norm.metrics import write_table

write_table(snakemake.input.states, list(snakemake.input.parts), snakemake.output.table)  # noqa: F821
"""


def doc_blocks() -> list[str]:
    """The python code blocks of the 'Adding an analysis' section, dedented."""
    section = (ROOT / "docs" / "architecture.md").read_text().split("## Adding an analysis")[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return ["\n".join(line[3:] for line in block.splitlines()) + "\n" for block in blocks]


def test_a_new_analysis_is_one_folder_one_rule_file_and_two_registrations(tmp_path, text_corpus, tiny_bert):
    accumulate, metrics, rules = doc_blocks()
    repo = tmp_path / "repo"
    repo.mkdir()
    for part in ("Snakefile", "workflow", "src", "config", "envs"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, repo / part)
    package = repo / "src" / "layergeom" / "analyses" / "max_norm"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "accumulate.py").write_text(accumulate)
    (package / "metrics.py").write_text(metrics)
    (repo / "workflow" / "rules" / "max_norm.smk").write_text(rules)
    (repo / "workflow" / "scripts" / "max_norm.py").write_text(ADAPTER)
    snakefile = (repo / "Snakefile").read_text()
    include = 'include: "workflow/rules/stream.smk"\n'
    (repo / "Snakefile").write_text(snakefile.replace(include, include + 'include: "workflow/rules/max_norm.smk"\n'))

    work = tmp_path / "work"
    work.mkdir()
    config = {
        "corpora": {"docs": {"source": "text", "path": str(text_corpus), "sample": {"n_sentences": 10}}},
        "models": {"bert": {"source": str(tiny_bert)}},
        "extraction": {"chunk_tokens": 32, "batch_tokens": 128},
        "stream": {"shards": 2},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(work, "results/tables/max_norm/docs.csv", snakefile=repo / "Snakefile")
    assert done.returncode == 0, done.stderr[-3000:]

    hidden = work / "results" / "hidden" / "bert" / "docs"
    array = open_hidden(hidden / "states.zarr")
    keep = token_mask(read_tokens(hidden / "tokens.parquet"))
    table = pl.read_csv(work / "results" / "tables" / "max_norm" / "docs.csv")
    assert table["model"].to_list() == ["bert"] * array.shape[0]
    want = [
        np.linalg.norm(np.asarray(array[layer], dtype=np.float64)[keep], axis=1).max()
        for layer in range(array.shape[0])
    ]
    np.testing.assert_allclose(table["max_norm"].to_numpy(), want, rtol=1e-12)
    assert table["relative_depth"].to_list() == [0.0, 0.5, 1.0]
