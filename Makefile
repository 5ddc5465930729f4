# Two entry points: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PROPENSITY_WAREHOUSE ?= warehouse/propensity.duckdb
DEMO_CUSTOMERS ?= 50000

.PHONY: install lint test demo results bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PROPENSITY_WAREHOUSE=$(CURDIR)/$(VENV)/lint.duckdb $(BIN)/sqlfluff lint dbt_project/models dbt_project/tests --disable-progress-bar && $(BIN)/sqlfluff lint --config models_py/ingest/loaders/online_retail_sql/.sqlfluff models_py/ingest/loaders/online_retail_sql --disable-progress-bar

test: lint
	$(BIN)/python -m pytest

demo: install
	$(BIN)/propensity demo --customers $(DEMO_CUSTOMERS)

results: install
	$(BIN)/propensity results --out docs/results.md

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) warehouse dbt_project/target dbt_project/logs
