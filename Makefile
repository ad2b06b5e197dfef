# The two commands: `make dev` runs the whole system, `make test` runs every test.
# Both bootstrap .venv from the machine's configured package index.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Parallel workers for the suite; override with `make test WORKERS=1`.
WORKERS ?= auto

.PHONY: dev test lint typecheck check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/handoffs dev

test: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench worker.py migrations
	$(BIN)/ruff format --check src tests bench worker.py migrations

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python bench/escalate.py

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
