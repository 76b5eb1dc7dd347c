# Quick start: `make demo` (strip a small demo dataset) and `make test` (the test suite).
# Both create .venv with the CPU-sized torch pin first, then install this package; reruns are quick.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test

demo: $(INSTALLED)
	$(BIN)/python -m singlestrip_bids.cli.demo demo

PYTEST_ARGS ?=
test: $(INSTALLED)
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

.PHONY: container-test
# The Docker image built and run for real in a private engine (needs root; several minutes).
container-test: $(INSTALLED)
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest -q -m container tests/test_container.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: an unpinned or newer torch pulls gigabytes of CUDA wheels.
$(INSTALLED): $(BIN)/python setup.cfg pyproject.toml
	@echo "Setting up $(VENV): torch 2.13.0 (CPU-sized pin) and this package; a few minutes the first time"
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	touch $@
