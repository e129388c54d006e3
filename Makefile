# Two commands on a fresh machine: `make run` and `make test`. Each creates or refreshes
# .venv and installs what it needs, at the versions in constraints.txt; the package is
# installed non-editable, as users get it. `make run` installs only what a run needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --constraint constraints.txt
SOURCES := $(shell find pa_batch schemas -name '*.py' -o -name '*.csv' -o -name '*.toml' -o -name '*.j2' -o -name '*.txt' -o -name 'py.typed') pyproject.toml
OUT ?= out/sample

.PHONY: run test test-fast test-floors lint bench golden same-outputs sample-data docs constraints clean

run: $(VENV)/.installed
	$(BIN)/pa-batch run sample_data/claims.csv --out $(OUT) --reference-dir sample_data/reference
	@echo "outputs: $(OUT)/results.parquet $(OUT)/rejects.parquet $(OUT)/summary.json $(OUT)/summary.md $(OUT)/summary.html"

# every test, on every core (pytest-xdist)
test: $(VENV)/.installed $(VENV)/.test-deps
	$(BIN)/pytest -n auto

# the inner loop: no Dask cluster, no browser, no subprocess runs, no slow property tests
test-fast: $(VENV)/.installed $(VENV)/.test-deps
	$(BIN)/pytest -n auto -m "not slow and not dask and not browser and not subprocess" --hypothesis-profile=fast

# the floors pyproject.toml declares, proven: a venv of exactly those versions (test tools
# at any version that installs beside them) runs the fast tests
FLOORS := .venv-floors
test-floors:
	rm -rf $(FLOORS)
	$(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install --quiet --upgrade pip
	$(FLOORS)/bin/python -m pip install --quiet . $$($(PYTHON) tools/floors.py) pytest \
		pytest-xdist hypothesis markdown-it-py "moto[server]" duckdb simple-icd-10-cm==1.5.0
	$(FLOORS)/bin/python -m pip list 2>/dev/null | grep -iE '^(numpy|pandas|pandera|pyarrow|typer|rich|jinja2) '
	$(FLOORS)/bin/pytest -n auto -p no:cacheprovider \
		-m "not slow and not dask and not browser and not subprocess"

# style, types, and the layering of the rooms (import-linter contracts in pyproject.toml)
lint: $(VENV)/.installed $(VENV)/.dev-deps
	$(BIN)/ruff check pa_batch schemas tests bench sample_data tools examples
	$(BIN)/ruff format --check pa_batch schemas tests bench sample_data tools examples
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed $(VENV)/.test-deps
	$(BIN)/python bench/bench_run.py
	$(BIN)/python bench/bench_reading.py
	$(BIN)/python bench/bench_dask_client.py --lines 10000000 --files 40 --workers 1 2 --rounds 5 --json bench/dask_client.json
	$(BIN)/python bench/bench_dask_client.py --lines 10000000 --files 40 --workers 1 2 --shape csv --rounds 3 --json bench/dask_client_csv.json
	$(BIN)/python bench/bench_registry.py --lines 50000000 --json bench/registry.json

# outputs held byte for byte by tests/test_same_outputs.py: regenerate only when a change
# means to move them; `make same-outputs REF=<commit>` compares with any earlier commit
golden: $(VENV)/.installed $(VENV)/.test-deps
	$(BIN)/python tools/golden.py

same-outputs: $(VENV)/.installed $(VENV)/.test-deps
	$(BIN)/python tools/same_outputs.py $(REF)

sample-data: $(VENV)/.installed
	$(BIN)/python sample_data/make_sample.py

# the README's generated tables and docs/contract.md, from the code's registries; the
# billable ICD-10-CM list, from the pinned simple-icd-10-cm
docs: $(VENV)/.installed $(VENV)/.test-deps
	$(BIN)/python tools/build_icd10cm_list.py --write
	$(BIN)/python tools/gen_docs.py --write

constraints: $(VENV)/.installed $(VENV)/.test-deps $(VENV)/.dev-deps
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude pa-batch; } > constraints.new
	mv constraints.new constraints.txt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools

$(VENV)/.deps: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) .
	touch $@

$(VENV)/.test-deps: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) ".[test]"
	touch $@

$(VENV)/.dev-deps: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) ".[dev]"
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	rm -rf build
	touch $@

clean:
	rm -rf $(VENV) $(FLOORS) build out *.egg-info .pytest_cache .hypothesis
