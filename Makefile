# Two commands on a fresh machine: `make run` and `make test`. Each creates or refreshes
# .venv and installs what it needs; the package is installed non-editable, as users get it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := $(shell find pa_batch schemas -name '*.py' -o -name '*.csv') pyproject.toml
OUT ?= out/sample

.PHONY: run test lint bench sample-data clean

run: $(VENV)/.installed
	$(BIN)/pa-batch run sample_data/claims.csv --out $(OUT) --reference-dir sample_data/reference
	@echo "outputs: $(OUT)/results.parquet $(OUT)/rejects.parquet $(OUT)/summary.json $(OUT)/summary.md"

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check pa_batch schemas tests bench sample_data
	$(BIN)/ruff format --check pa_batch schemas tests bench sample_data

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_run.py

sample-data: $(VENV)/.installed
	$(BIN)/python sample_data/make_sample.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]"
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	rm -rf build
	touch $@

clean:
	rm -rf $(VENV) build out *.egg-info .pytest_cache .hypothesis
