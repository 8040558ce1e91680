# The two commands a newcomer needs:  make run   and   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/upload-gate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: run test lint unit bench
run: $(BIN)/upload-gate  ## run the gate on embedded defaults (embedded Postgres, local banks, bundled policy)
	$(BIN)/upload-gate serve

lint: $(BIN)/upload-gate
	$(BIN)/ruff check gate tests bench
	$(BIN)/ruff format --check gate tests bench
	$(BIN)/mypy

test: lint  ## everything CI runs: lint, types, unit, integration and end-to-end tests
	$(BIN)/pytest -p no:cacheprovider

unit: $(BIN)/upload-gate
	$(BIN)/pytest -p no:cacheprovider tests/unit

bench: $(BIN)/upload-gate
	$(BIN)/python -m bench
