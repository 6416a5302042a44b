# The two commands a new user needs: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint install stop status clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## make demo: venv, Airflow on the local PostgreSQL, demo STAC catalog, one radcor run via REST
demo: $(STAMP)
	source scripts/env.sh && scripts/prepare_db.sh && \
	$(VENV)/bin/python scripts/services.py start && \
	$(VENV)/bin/python scripts/demo.py examples/demo_conf.json

## make test: lint, then everything (unit, contract, DAG integrity, dag.test() runs, REST end-to-end)
test: $(STAMP)
	$(MAKE) --no-print-directory lint
	scripts/test.sh

## make test-fast: unit, contract and DAG integrity only (about two minutes)
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q

## make lint: ruff check, ruff format --check, mypy --strict on include/, plugins/, dags/ (run by make test)
lint: $(STAMP)
	$(VENV)/bin/ruff check include plugins dags tests bench scripts
	$(VENV)/bin/ruff format --check include plugins dags tests bench scripts
	$(VENV)/bin/mypy

stop:
	source scripts/env.sh && $(VENV)/bin/python scripts/services.py stop

status:
	source scripts/env.sh && $(VENV)/bin/python scripts/services.py status

clean: stop
	rm -rf var
