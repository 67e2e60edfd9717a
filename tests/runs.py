"""Real Snakemake runs of the workflow from the tests: one command line for every test that runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"


def snakemake_command(
    workdir: Path, *args: str, config: str | None = "config.yaml", snakefile: Path = SNAKEFILE
) -> list[str]:
    """Snakemake on ``snakefile`` in ``workdir``, with ``workdir/config`` unless ``config`` is None."""
    configfile = ["--configfile", str(workdir / config)] if config else []
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir), *configfile, *args]


def snakemake(
    workdir: Path, *args: str, config: str | None = "config.yaml", snakefile: Path = SNAKEFILE, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run Snakemake to the end on 2 cores, output captured."""
    cmd = snakemake_command(workdir, "--cores", "2", *args, config=config, snakefile=snakefile)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
