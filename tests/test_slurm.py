"""The SLURM profile for real: a one-node cluster on this machine (tools/slurm_local.sh, as root) runs the tiny
config through snakemake-executor-plugin-slurm, and the run equals a local run of the same config.

    .venv/bin/python -m pytest -m slurm tests/test_slurm.py -q

Nothing about the workflow is written down here: the expectations come from Snakemake's own job lists. The cluster
run extracts in 3 shards (`extraction.shards: 3`), the local run in one job: the cluster run schedules the local
run's jobs plus, for each extraction, one `extract_plan` and three `extract_shard` jobs; every one of them except
local rules (those Snakemake prints as `localrule`, such as `all`) is submitted with sbatch exactly once and ends
COMPLETED in SLURM; results/ holds the same files in both runs, byte for byte.
"""

import filecmp
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from runs import ROOT, snakemake_command
from test_workflow import tiny_config

SCRIPT = ROOT / "tools" / "slurm_local.sh"
# The test's node declares 16 CPUs (nothing enforces them): two of extraction's 8-CPU jobs, or one and small jobs,
# run side by side; memory (32000 MB) lets about 8 jobs run at once, the others wait in SLURM's queue and start as
# soon as one ends, not after Snakemake's next status check.
CLUSTER_ENV = {"SLURM_LOCAL_CPUS": "16", "SLURM_LOCAL_MEM_MB": "32000"}
# No accounting database on the local cluster: no account, job states from squeue. The first status check after
# 1 s instead of 40 (tiny jobs); the plugin checks again after 1 s while jobs keep finishing, backing off by 10 s
# per check without a finished job.
SLURM_ARGS = [
    "--workflow-profile",
    str(ROOT / "workflow/profiles/slurm"),
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
]
# A job as Snakemake announces it: `rule <name>:` (`localrule` for a job run by the Snakemake process itself),
# then indented fields such as `jobid: 12` and `wildcards: model=bert, corpus=docs`.
JOB = re.compile(r"^(local)?(?:rule|checkpoint) (\S+):\n((?:    .*\n)*)", re.MULTILINE)
SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+)", re.MULTILINE)
JOB_STATS = re.compile(r"^Job stats:\njob\s+count\n-+\s+-+\n((?:\S+\s+\d+\n)+)", re.MULTILINE)

pytestmark = pytest.mark.slurm


class Job(NamedTuple):
    rule: str
    wildcards: str
    jobid: int
    local: bool


def jobs(log: str) -> list[Job]:
    """Every job a run announced, checked against the run's own `Job stats:` table so that none is missed."""
    found = []
    for match in JOB.finditer(log):
        fields = dict(re.findall(r"^    (\w+): (.*)$", match.group(3), re.MULTILINE))
        found.append(Job(match.group(2), fields.get("wildcards", ""), int(fields["jobid"]), bool(match.group(1))))
    stats = JOB_STATS.search(log)
    assert stats, log[-5000:]
    counts = Counter({rule: int(n) for rule, n in (line.split() for line in stats.group(1).splitlines())})
    total = counts.pop("total")
    assert sum(counts.values()) == total > 0 and Counter(job.rule for job in found) == counts, log[-5000:]
    return found


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("tools/slurm_local.sh needs root")
    try:
        started = subprocess.run(
            [str(SCRIPT), "start"],
            check=False,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, **CLUSTER_ENV},
        )
        assert started.returncode == 0, started.stdout + started.stderr
        yield
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop"], check=False, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def start(workdir: Path, config: dict, *args: str) -> subprocess.Popen:
    """Snakemake on `config` in `workdir`, in the background; its output goes to workdir.with_suffix('.log')."""
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = snakemake_command(workdir, *args)
    with open(workdir.with_suffix(".log"), "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)


# What the executor plugin logs when it cannot read MinJobAge (scontrol slow under load): it then asks sacct, which
# a cluster without accounting never answers, and would wait for ever.
SACCT_FALLBACK = "Falling back to 'sacct' for status queries"


def finish(proc: subprocess.Popen, timeout: float) -> str:
    """The output of a Snakemake started with `start`, once it succeeded; fails at once, with the reason, when the
    plugin falls back to sacct on this cluster without accounting."""
    path = Path(proc.args[proc.args.index("--directory") + 1]).with_suffix(".log")
    waited = 0.0
    while proc.poll() is None:
        if SACCT_FALLBACK in path.read_text():
            stop(proc)
            pytest.fail(
                f"the SLURM plugin fell back to sacct, which this cluster has not (see {path}): it would "
                "wait for ever; run tools/slurm_check.py and see docs/slurm.md"
            )
        if waited > timeout:
            stop(proc)
            pytest.fail(f"Snakemake did not finish in {timeout} s; its output: {path}")
        time.sleep(5)
        waited += 5
    log = path.read_text()
    assert proc.returncode == 0, log[-5000:]
    return log


def stop(proc: subprocess.Popen) -> None:
    """Ends a Snakemake that is still running (it cancels its SLURM jobs on SIGTERM)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def slurm_states(ids: list[str]) -> dict[str, str]:
    """SLURM's own record of jobs (squeue keeps finished ones for MinJobAge seconds)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i %T"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.split() for line in out.splitlines())


def test_slurm_run_equals_local_run(cluster, tmp_path, text_corpus, tiny_bert, tiny_gpt2):
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "slurm_check.py"), "--init-seconds", "1"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config = tiny_config(text_corpus, tiny_bert, tiny_gpt2)
    sharded = {**config, "extraction": {**config["extraction"], "shards": 3}}
    # Both runs at once: the local one fills the cores while the cluster run waits on SLURM and status checks.
    # 8 cores: extraction runs with the profile's 8 threads, so float32 sums are done in the same order.
    slurm_run = start(tmp_path / "slurm", sharded, *SLURM_ARGS)
    local_run = start(tmp_path / "local", config, "--cores", "8")
    try:
        local_log = finish(local_run, timeout=1200)
        slurm_log = finish(slurm_run, timeout=1800)
    finally:
        stop(local_run)
        stop(slurm_run)
    local_jobs, slurm_jobs = jobs(local_log), jobs(slurm_log)

    # the cluster run scheduled the local run's jobs and, per extraction, a plan and 3 shards
    shard_rules = ("extract_plan", "extract_shard")
    assert sorted(j[:2] for j in slurm_jobs if j.rule not in shard_rules) == sorted(j[:2] for j in local_jobs)
    extractions = [j.wildcards for j in local_jobs if j.rule == "extract"]
    shards = sorted(j.wildcards for j in slurm_jobs if j.rule == "extract_shard")
    assert extractions and shards == sorted(f"{w}, shard={k}-of-3" for w in extractions for k in range(3)), shards
    assert sorted(j.wildcards for j in slurm_jobs if j.rule == "extract_plan") == sorted(extractions)
    # every job of the cluster run but those of local rules went through sbatch, once
    expected = [j for j in slurm_jobs if not j.local]
    assert expected
    submitted = dict(SUBMITTED.findall(slurm_log))
    assert len(submitted) == len(SUBMITTED.findall(slurm_log)) == len(expected), slurm_log[-5000:]
    assert set(submitted) == {str(j.jobid) for j in slurm_jobs if not j.local}
    # and SLURM ran each of them to completion
    states = slurm_states(list(submitted.values()))
    assert states == dict.fromkeys(submitted.values(), "COMPLETED"), states

    # the same files, byte for byte
    local, slurm = tmp_path / "local" / "results", tmp_path / "slurm" / "results"
    assert files(local) and files(local) == files(slurm)
    differ = [str(p) for p in files(local) if not filecmp.cmp(local / p, slurm / p, shallow=False)]
    assert not differ, differ
