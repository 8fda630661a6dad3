# The whole set-up on a fresh machine: `make demo` and `make test` create .venv when it
# is missing, install lockgate with its dev extra and every example plugin, then run.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXAMPLES := $(wildcard example_plugins/*/pyproject.toml)
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml $(EXAMPLES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" $(foreach p,$(EXAMPLES),-e $(dir $(p)))
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: lint typecheck unit

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks scripts example_plugins
	$(PY) -m ruff format --check src tests benchmarks scripts example_plugins

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest -q tests $(foreach p,$(EXAMPLES),$(dir $(p))tests)

# Performance runs beside real peers; results and how to read them: docs/performance.md
bench: $(STAMP)
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/hashing.py
	$(PY) benchmarks/staging.py
	$(PY) benchmarks/state_scale.py
	$(PY) benchmarks/promote.py
	$(PY) benchmarks/watch.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
