# The two commands: `make dev` runs the whole system, `make test` runs every test.
# Both bootstrap .venv from the machine's configured package index.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Parallel workers for the suite; override with `make test WORKERS=1`.
WORKERS ?= auto
# Where `make dev` serves: `make dev PORT=8100`, `make dev HOST=0.0.0.0`.
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: dev test lint typecheck check bench clean lock

# One line while pip works (about a minute the first time); its output goes to a log,
# shown only if the install fails.
$(STAMP): pyproject.toml
	@echo "== installing dependencies into $(VENV) (first run, or pyproject.toml changed; about a minute)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@( $(BIN)/python -m pip install --upgrade pip && $(BIN)/python -m pip install -e '.[test,embedded]' ) \
		> $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; echo "== the install failed; the whole log: $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

dev: $(STAMP)
	@$(BIN)/handoffs dev --host $(HOST) --port $(PORT)

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
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The image's pinned runtime dependencies: resolve [project].dependencies alone in a fresh venv.
lock:
	@rm -rf $(VENV)/lock && $(PYTHON) -m venv $(VENV)/lock
	@$(VENV)/lock/bin/python -m pip install -q .
	@{ sed -n '1,4p' requirements.lock; $(VENV)/lock/bin/python -m pip freeze --exclude-editable | grep -v '^handoffs'; } > requirements.lock.new
	@mv requirements.lock.new requirements.lock && rm -rf $(VENV)/lock && echo "requirements.lock updated"
