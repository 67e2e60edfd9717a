"""The SLURM profile for real: a one-node cluster on this machine (tools/slurm_local.sh, as root) runs the tiny
config through snakemake-executor-plugin-slurm, and every result equals a local run's byte for byte.

    PYTHONPATH=src .venv/bin/python -m pytest -m slurm tests/test_slurm.py -q
"""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_workflow import tiny_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "slurm_local.sh"
# No accounting database on the local cluster: no account, job states from squeue; poll early (tiny jobs).
SLURM_ARGS = ["--workflow-profile", str(ROOT / "workflow/profiles/slurm"), "--slurm-no-account",
              "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("tools/slurm_local.sh needs root")
    try:
        started = subprocess.run([str(SCRIPT), "start"], check=False, capture_output=True, text=True, timeout=900)
        assert started.returncode == 0, started.stdout + started.stderr
        yield
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop"], check=False, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def run(workdir: Path, config: dict, *args: str) -> str:
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-5000:]
    return done.stdout + done.stderr


def files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_slurm_run_equals_local_run(cluster, tmp_path, text_corpus, tiny_bert, tiny_gpt2):
    config = tiny_config(text_corpus, tiny_bert, tiny_gpt2)
    # 8 cores: extraction runs with the profile's 8 threads, so float32 sums are done in the same order
    run(tmp_path / "local", config, "--cores", "8")
    log = run(tmp_path / "slurm", config, *SLURM_ARGS)
    local, slurm = tmp_path / "local" / "results", tmp_path / "slurm" / "results"
    assert files(local) == files(slurm)
    assert len([p for p in files(local) if p.suffix == ".png"]) == 13
    differ = [str(p) for p in files(local) if not filecmp.cmp(local / p, slurm / p, shallow=False)]
    assert not differ, differ
    # every job but the local `all` went through sbatch: 2 corpus, 4 extract, 4 summary, 2 summary_figure,
    # 2 posctx_shard, 2 posctx_merge, 2 posctx_figures, 1 posctx_layers_figure, 3 table
    assert log.count("has been submitted with SLURM jobid") == 22, log[-5000:]
