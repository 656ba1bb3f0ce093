# Two entry points: `make run` (the tutorial experiment) and `make test` (lint + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format clean

$(BIN)/kldiv: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $@

run: $(BIN)/kldiv
	$(BIN)/kldiv run

test: $(BIN)/kldiv
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/python -m pytest

format: $(BIN)/kldiv
	$(BIN)/ruff check --fix src tests benchmarks scripts
	$(BIN)/ruff format src tests benchmarks scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
