# The two commands of the README: `make demo` (a real import on the local stack) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: setup demo test lint bench
setup: $(VENV)/.installed

# The import starts the embedded Postgres when nothing runs yet (a running `serve` is reused);
# LOCAL_STOP_POSTGRES=1 makes it stop what it started when it exits, so nothing is left running.
demo: setup
	$(PY) -m lib sample .local/LEADCLIENT-sample.csv --rows 20000
	LOCAL_STOP_POSTGRES=1 $(PY) -m lib import .local/LEADCLIENT-sample.csv --yes

# Two pytest-xdist workers, each with its own embedded Postgres (or its own databases on
# TEST_DATABASE_URL's server): most of a test's time is waiting on HTTP, QStash and Postgres.
# PYTEST_WORKERS=0 runs the tests in this one process.
PYTEST_WORKERS ?= 2

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(PY) -m bench.e2e $(BENCH_ARGS)
