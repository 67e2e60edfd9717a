"""Before a SLURM run: can Snakemake read the state of finished jobs on this cluster?

    .venv/bin/python tools/slurm_check.py [--init-seconds 40]

The SLURM executor plugin reads job states with sacct (the accounting database) or squeue (which keeps a
finished job for MinJobAge seconds). On a cluster without accounting, squeue is the only way, and only when
MinJobAge is at least 3 x the first status-check delay; otherwise, or when `scontrol show config` cannot be read,
the plugin falls back to sacct and waits for ever. Prints what is wrong and the profile lines to set; exit 1.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

PROFILE_LINES = "slurm-no-account: true\nslurm-status-command: squeue"


def cluster_config(timeout: float = 60) -> dict[str, str] | str:
    """``scontrol show config`` as key -> value, or why it could not be read."""
    try:
        done = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=timeout)
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        return f"`scontrol show config` failed: {err}"
    if done.returncode:
        return f"`scontrol show config` failed: {done.stderr.strip()}"
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def seconds(value: str | None) -> int | None:
    """A slurm.conf duration (``300 sec``, ``1h``, ``3600``) in seconds."""
    match = re.match(r"^(\d+)\s*([a-zA-Z]*)", value or "")
    if not match:
        return None
    return int(match.group(1)) * (3600 if match.group(2).lower() in ("h", "hour", "hours") else 1)


def status_problem(config: dict[str, str] | str, init_seconds: int = 40) -> str | None:
    """Why Snakemake could not follow its jobs on a cluster with this config, or None."""
    if isinstance(config, str):
        return f"{config}: the plugin cannot read MinJobAge and may wait for ever on sacct"
    if config.get("AccountingStorageType", "").endswith("/none"):
        age, needed = seconds(config.get("MinJobAge")), 3 * init_seconds
        if age is None or age < needed:
            return (
                f"this cluster has no accounting database (AccountingStorageType={config['AccountingStorageType']}) "
                f"and squeue keeps finished jobs only MinJobAge={config.get('MinJobAge')}: set MinJobAge to at least "
                f"{needed} s in slurm.conf (3 x slurm-init-seconds-before-status-checks = {init_seconds}), and in the "
                f"profile (workflow/profiles/slurm/config.yaml):\n{PROFILE_LINES}"
            )
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init-seconds", type=int, default=40, help="slurm-init-seconds-before-status-checks")
    args = parser.parse_args()
    config = cluster_config()
    problem = status_problem(config, args.init_seconds)
    if problem:
        print(f"slurm_check: {problem}")
        return 1
    accounting = config.get("AccountingStorageType", "?")
    print(f"slurm_check: job states readable (AccountingStorageType={accounting}, MinJobAge={config.get('MinJobAge')})")
    if accounting.endswith("/none"):
        print(f"slurm_check: no accounting database: set in the profile\n{PROFILE_LINES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
