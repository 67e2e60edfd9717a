"""Checkpoint schedules and names: which training steps are saved, and how checkpoint models are called."""

from __future__ import annotations

import re

STEP_PREFIX = "step_"


def checkpoint_steps(steps: int, every: int | None = None, log_spaced: bool = True) -> list[int]:
    """Saved steps: 0, the powers of two up to ``steps`` (as Pythia), every ``every`` steps, and ``steps``."""
    saved = {0, steps}
    if log_spaced:
        saved.update(2**k for k in range(steps.bit_length()) if 2**k <= steps)
    if every:
        saved.update(range(every, steps + 1, every))
    return sorted(saved)


def step_folder(step: int) -> str:
    """Folder name of a saved step inside a run's checkpoints folder."""
    return f"{STEP_PREFIX}{step}"


def checkpoint_model_name(family: str, label: str) -> str:
    """Model name of one checkpoint: ``<family>.<label>`` ('.' is safe in paths and wildcards; '@' is not)."""
    return f"{family}.{label}"


def revision_step(revision: str) -> int:
    """Training step of a hub revision named like Pythia's (``step1000``): its trailing integer."""
    match = re.search(r"(\d+)$", revision)
    if not match:
        raise ValueError(f"cannot read a training step from revision '{revision}' (expected a name like 'step1000')")
    return int(match.group(1))
