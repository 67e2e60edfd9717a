"""The peers' own code, loaded for the tests that compare our quantities with theirs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def microscope_functions() -> ModuleType:
    """llm_microscope/functions.py of llm-microscope 0.0.7 ([SL]'s code), loaded from its file: the package's
    __init__ does not import. A test dependency: missing, the tests fail."""
    package = importlib.util.find_spec("llm_microscope")
    assert package is not None, "llm-microscope==0.0.7 is a test dependency (pyproject.toml, extras 'test')"
    path = Path(package.submodule_search_locations[0]) / "functions.py"
    spec = importlib.util.spec_from_file_location("llm_microscope_functions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
