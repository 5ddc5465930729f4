# Two entry points: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PROPENSITY_WAREHOUSE ?= warehouse/propensity.duckdb
DEMO_CUSTOMERS ?= 50000

.PHONY: install browser java lint test demo results bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium and its WebDriver for the report's browser test (Debian packages). Installed
# with apt-get when missing and running as root (CI); otherwise a hint, and the test says why it
# cannot run. Quiet when both are present.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver (apt-get)"; \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver >/dev/null; \
	else \
		echo "chromium/chromedriver missing: install Debian's chromium and chromium-driver" \
			"(the report's browser test needs them)"; \
	fi

# A headless Java runtime for the Spark engine's tests (pyspark starts a JVM). Installed with
# apt-get when java is missing and running as root (CI); otherwise a hint, and tests/test_spark.py
# says why it cannot run. Quiet when java is present.
java:
	@if command -v java >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing a headless Java runtime (apt-get)"; \
		apt-get update -qq >/dev/null && \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			openjdk-17-jre-headless >/dev/null 2>&1 || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			default-jre-headless >/dev/null); \
	else \
		echo "java missing: install Debian's openjdk-17-jre-headless (the Spark engine's tests need it)"; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PROPENSITY_WAREHOUSE=$(CURDIR)/$(VENV)/lint.duckdb $(BIN)/sqlfluff lint dbt_project/models dbt_project/tests dbt_project/macros --disable-progress-bar && $(BIN)/sqlfluff lint --config models_py/ingest/loaders/online_retail_sql/.sqlfluff models_py/ingest/loaders/online_retail_sql --disable-progress-bar

# Two pytest workers, one test file each at a time (module fixtures stay within a worker):
# the suite is mostly dbt subprocesses and DuckDB waiting on I/O or one core.
test: lint browser java
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=30

demo: install
	$(BIN)/propensity demo --customers $(DEMO_CUSTOMERS)

results: install
	$(BIN)/propensity results --out docs/results.md

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) warehouse dbt_project/target dbt_project/logs
