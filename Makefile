# rlnas in two commands: `make search` (set up, then a demo search) and `make test`.
# Both create .venv with $(PYTHON) when it is missing and install the project with its
# dependencies; the installation is redone only when pyproject.toml changes.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlnas-installed
PYTEST_ARGS ?= -q -n 2 --dist loadfile

.PHONY: search test setup ui lint

search: $(STAMP)
	$(BIN)/rlnas search --config configs/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

ui: $(STAMP)
	$(BIN)/rlnas ui

lint: $(STAMP)
	$(BIN)/ruff check rlnas tests benchmarks examples
	$(BIN)/ruff format --check rlnas tests benchmarks examples

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev,ray]'
	touch $@
