# The whole set-up on a fresh machine: `make demo` and `make test` create .venv when it
# is missing, install lockgate with its dev extra and every example plugin, then run.
# An editable install leaves bytecode to the first import, which PYTHONDONTWRITEBYTECODE
# (set in many containers and CI images) forbids: every command would compile some
# fifty modules again (45-50 ms), so the install step compiles them once.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXAMPLES := $(wildcard example_plugins/*/pyproject.toml)
# First-party plugins shipped as their own distributions (lockgate-postgres: its tests
# need a PostgreSQL server and skip without one, unless LOCKGATE_REQUIRE_SERVICES=1).
PLUGINS := $(wildcard plugins/*/pyproject.toml)
STAMP := $(VENV)/.installed

.PHONY: demo demo-team test lint typecheck unit bench clean

$(STAMP): pyproject.toml $(EXAMPLES) $(PLUGINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" $(foreach p,$(EXAMPLES) $(PLUGINS),-e $(dir $(p)))
	$(PY) -m compileall -q src $(foreach p,$(EXAMPLES) $(PLUGINS),$(dir $(p))src)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

# The same story on the postgres stores, in a database of its own on the server PG names
# (default host=127.0.0.1 port=5432 user=postgres), dropped at the end; exit 2, one line,
# when no server is reachable. docs/team.md
demo-team: $(STAMP)
	$(PY) scripts/demo.py --postgres $(if $(PG),--pg-server "$(PG)")

test: lint typecheck unit

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks scripts example_plugins plugins
	$(PY) -m ruff format --check src tests benchmarks scripts example_plugins plugins

typecheck: $(STAMP)
	$(PY) -m mypy

# One pytest worker per core (pytest-xdist): every test is independent of the others.
unit: $(STAMP)
	$(PY) -m pytest -q -n auto tests $(foreach p,$(EXAMPLES) $(PLUGINS),$(dir $(p))tests)

# Performance runs beside real peers; results and how to read them: docs/performance.md
bench: $(STAMP)
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/hashing.py
	$(PY) benchmarks/staging.py
	$(PY) benchmarks/state_scale.py
	$(PY) benchmarks/promote.py
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/watch.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
