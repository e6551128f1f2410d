# Everything runs from a virtualenv the Makefile creates itself (Python 3.11+).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-keep test lint crd bench mutate image lock clean

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

# The suite runs in random order (pytest-randomly); the seed is printed first, and `make test SEED=N` replays it.
ifndef SEED
SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif

test: $(BIN)/.installed
	@echo "test order: --randomly-seed=$(SEED) (make test SEED=$(SEED) replays it)"
	$(BIN)/python -m pytest -q -n 3 -p randomly --randomly-seed=$(SEED)
	$(BIN)/python -m controller demo --quiet

lint: $(BIN)/.installed
	$(BIN)/python -m pyflakes controller devenv tests bench
	$(BIN)/python -m controller crd | diff -u crds/ecsalbservices.yaml -
	$(BIN)/python -m controller crd --kind EcsAlbPolicy | diff -u crds/ecsalbpolicies.yaml -

crd: $(BIN)/.installed
	$(BIN)/python -m controller crd > crds/ecsalbservices.yaml
	$(BIN)/python -m controller crd --kind EcsAlbPolicy > crds/ecsalbpolicies.yaml

bench: $(BIN)/.installed
	$(BIN)/python bench/reconcile.py

# Mutation testing, a report and not a gate (mutmut, configured in pyproject.toml [tool.mutmut]): which small
# changes to the modules that decide what is written to AWS no fast test notices. MUTATE names the mutants by
# module glob (the default takes ~10 min on 2 cores); MUTATE=all runs every configured module (about 12,000
# mutants: hours). Prints the survivors (and "no tests": code no fast test reaches), then the counts.
MUTATE ?= controller.ownership* controller.resources.rule*
mutate: $(BIN)/.installed
	$(BIN)/mutmut run $(if $(filter all,$(MUTATE)),,$(foreach m,$(MUTATE),"$(m)")) > mutants.log 2>&1 || { tail -30 mutants.log; exit 1; }
	@$(BIN)/mutmut results $(if $(filter all,$(MUTATE)),,| grep -E '$(subst *,,$(subst $(eval) ,|,$(MUTATE)))')
	@tr '\r' '\n' < mutants.log | grep -E '^. [0-9]+/[0-9]+ ' | tail -1

# The operator's image, from requirements.lock (README "Image"): make image IMAGE=<registry>/ecs-alb-operator:<tag>
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= ecs-alb-operator:$(VERSION)
PYTHON_IMAGE ?= python:3.11-slim
image:
	docker build --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) -t $(IMAGE) .

# requirements.lock again, after a change of pyproject.toml's dependencies (every platform, Python 3.11+).
lock: $(BIN)/.installed
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --universal --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache mutants mutants.log
