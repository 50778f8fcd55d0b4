# Two commands: `make dev` runs the platform, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench fuzz load faults audit clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/crp dev $(ARGS)

# Two test processes (JOBS=0 for one): much of a test's time is spent waiting on a server or a process.
# --dist loadfile keeps each module's tests, and so its module-scoped platform, on one process.
test: $(STAMP)
	$(BIN)/python -m pytest $(if $(filter-out 0,$(or $(JOBS),2)),-n $(or $(JOBS),2) --dist loadfile) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/register.py

# The larger hardening runs (the suite runs small versions of each): they print their figures.
fuzz: $(STAMP)
	$(BIN)/python bench/fuzz.py --examples $(or $(EXAMPLES),25) --coverage

load: $(STAMP)
	$(BIN)/python bench/load.py --seconds $(or $(DURATION),180) --clients $(or $(CLIENTS),8)

faults: $(STAMP)
	CRP_FAULT_ROUNDS=$(or $(ROUNDS),40) $(BIN)/python -m pytest -s -q -p no:cacheprovider -o timeout=1800 \
		tests/e2e/test_faults.py

# Known vulnerabilities in the installed dependencies (pip-audit asks PyPI's advisory data).
audit: $(STAMP)
	$(BIN)/pip-audit --progress-spinner off --skip-editable --strict  # --strict: a package it could not check fails

clean:
	rm -rf $(VENV) .crp .pytest_cache
