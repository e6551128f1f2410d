# Everything runs from a virtualenv the Makefile creates itself (Python 3.11+).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-keep test lint crd bench clean

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m controller demo

# The same, then everything stays up with a kubeconfig for the real kubectl (Ctrl-C to stop); the operator then
# logs at LOG_LEVEL (debug, info, warning, error).
LOG_LEVEL ?= info
demo-keep: $(BIN)/.installed
	$(BIN)/python -m controller demo --keep --log-level $(LOG_LEVEL)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n 3
	$(BIN)/python -m controller demo --quiet

lint: $(BIN)/.installed
	$(BIN)/python -m pyflakes controller devenv tests bench
	$(BIN)/python -m controller crd | diff -u crds/ecsalbservices.yaml -

crd: $(BIN)/.installed
	$(BIN)/python -m controller crd > crds/ecsalbservices.yaml

bench: $(BIN)/.installed
	$(BIN)/python bench/reconcile.py

clean:
	rm -rf $(VENV) .pytest_cache
