# nnrds: `make reproduce` (whole DAG at default scale) and `make test` (the test suite).
# Both create .venv with the pinned dependencies of pyproject.toml on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
STAMP := $(VENV)/.nnrds-installed
CONFIG ?= config/config.yaml
PROFILE ?= profiles/default
ARGS ?=
# `make test` runs the suite on PYTEST_WORKERS processes (pytest-xdist); the tests that read the shared smoke-scale
# DAG run stay on one worker (xdist group "smoke", tests/conftest.py). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2

.PHONY: reproduce test smoke report venv clean format docs-figure

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

reproduce: $(STAMP)
	$(SNAKEMAKE) --profile $(PROFILE) --configfile $(CONFIG) $(ARGS)
	$(MAKE) report CONFIG=$(CONFIG) PROFILE=$(PROFILE)
	@echo "figures in figures/, report in results/report.html"

# results/report.html from the run already in results/ and figures/ (`make reproduce` calls it; CONFIG= its scale)
report: $(STAMP)
	$(SNAKEMAKE) --profile $(PROFILE) --configfile $(CONFIG) --report results/report.html

smoke:
	$(MAKE) reproduce CONFIG=config/smoke.yaml

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 $(ARGS)

# the README's small forest plot from the ledger of a default-scale run (LEDGER=... for another one)
LEDGER ?= results/claims.csv
docs-figure: $(STAMP)
	$(PY) -c "import pandas as pd; from nnrds import forest; forest.docs_figure(pd.read_csv('$(LEDGER)'), 'docs/claims_forest.png')"
	@echo "docs/claims_forest.png from $(LEDGER)"

format: $(STAMP)  # apply the style the tests check (tests/unit/test_style.py)
	$(VENV)/bin/ruff check --fix src tests workflow
	$(VENV)/bin/ruff format src tests workflow
	$(VENV)/bin/snakefmt Snakefile workflow/rules
	$(VENV)/bin/nbstripout workflow/notebooks/*.ipynb

clean:
	rm -rf results figures .snakemake
