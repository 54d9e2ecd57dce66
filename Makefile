# The two commands a newcomer needs: `make demo` and `make test`. Both are idempotent: they
# create the Python 3.12 environment once per machine (outside the clone), fetch and start the
# local stack (Kafka, Redis, MLflow) if it is not running, then do their work.
SHELL := /bin/bash
RB := bin/redblue
VENV = $(shell scripts/bootstrap.sh)
export PYTHONPATH := $(CURDIR)
# bytecode cached outside the clone, as bin/redblue does (every start would compile again otherwise)
export PYTHONPYCACHEPREFIX ?= $(or $(REDBLUE_HOME),$(HOME)/.cache/redblue)/pycache
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test setup up down status lint unit integration bench serve browser

setup:
	@scripts/bootstrap.sh >/dev/null

up: setup
	@$(RB) stack up

down:
	@$(RB) stack down

status:
	@$(RB) stack status

# `make demo SERVE=1` keeps serving the leaderboard page at the end (Ctrl-C stops it).
demo: up
	$(RB) train --until 2023-12-29
	$(RB) simulate --start 2024-01-02 --days 180
	@if [ -n "$(SERVE)" ]; then $(RB) serve; fi

serve: up
	$(RB) serve

browser:
	@scripts/ensure-chromium.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

unit: setup
	$(VENV)/bin/python -m pytest tests/unit -q

integration: up browser
	$(VENV)/bin/python -m pytest tests/integration -q

test: up lint browser
	$(VENV)/bin/python -m pytest tests -q

bench: up
	$(RB) train --until 2023-12-29
	$(VENV)/bin/python bench/pipeline.py
	$(VENV)/bin/python bench/serving.py
	$(VENV)/bin/python bench/api.py
	$(VENV)/bin/python bench/throughput.py
	$(VENV)/bin/python bench/scaling.py
	$(VENV)/bin/python bench/security.py
