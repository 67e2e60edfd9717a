"""tools/slurm_check.py: a cluster whose finished jobs Snakemake cannot see is named before any submission."""

import importlib.util

from runs import ROOT

spec = importlib.util.spec_from_file_location("slurm_check", ROOT / "tools" / "slurm_check.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_no_accounting_needs_a_long_enough_min_job_age():
    none = {"AccountingStorageType": "accounting_storage/none"}
    assert check.status_problem({**none, "MinJobAge": "3600 sec"}) is None
    problem = check.status_problem({**none, "MinJobAge": "60 sec"}, init_seconds=40)
    assert "MinJobAge=60 sec" in problem and "at least 120 s" in problem and "slurm-status-command: squeue" in problem
    assert "MinJobAge=None" in check.status_problem(none)
    assert check.status_problem({"AccountingStorageType": "accounting_storage/slurmdbd", "MinJobAge": "1"}) is None


def test_an_unreadable_config_is_named():
    assert "may wait for ever" in check.status_problem("`scontrol show config` failed: timed out")
    assert check.seconds("1h") == 3600 and check.seconds("300 sec") == 300 and check.seconds("") is None
