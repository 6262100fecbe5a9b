# rlnas in two commands: `make search` (set up, then a demo search) and `make test`.
# Both create .venv with $(PYTHON) when it is missing: `make search` installs rlnas with its
# core dependencies only, `make test` adds the test tools and Ray (.[dev,ray]); each
# installation is redone only when pyproject.toml changes.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.rlnas-core
DEV := $(VENV)/.rlnas-dev
PYTEST_ARGS ?= -q -n 2 --dist loadfile

.PHONY: search test setup ui lint

search: $(CORE)
	$(BIN)/rlnas search --config configs/demo.yaml

test: $(DEV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(CORE)

ui: $(CORE)
	$(BIN)/rlnas ui

lint: $(DEV)
	$(BIN)/ruff check rlnas tests benchmarks examples
	$(BIN)/ruff format --check rlnas tests benchmarks examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(CORE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev,ray]'
	touch $(CORE) $@
