# Two commands on a fresh machine: `make demo` and `make test`. `setup` is idempotent.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# uv through the interpreter, so it is found wherever pip put its binary
UV ?= python3 -m uv
PYTEST_ARGS ?=
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup demo quality test test-all bench lint clean dagster-ui mlflow-ui .uv-ready

.uv-ready:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv || \
	  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet --break-system-packages uv

/usr/bin/espeak-ng:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get install -y -q espeak-ng >/dev/null 2>&1 || \
	  ($$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q espeak-ng >/dev/null)

$(VENV)/.installed: pyproject.toml | .uv-ready
	$(UV) venv --quiet --allow-existing --python 3.11 $(VENV)
	$(UV) pip install --quiet --python $(PY) -e '.[dev]'
	$(PY) -c 'from imagintalk.ray_session import warm_jit_caches as w; w()'  # numba cache before any worker (numba#10128)
	touch $@

setup: /usr/bin/espeak-ng $(VENV)/.installed

demo: setup
	$(PY) -m dagster_project.demo

# the quality run (issues 12, 13): synthtalk_large, 120 speakers x 8 clips, every stage, the oracle ladder
quality: setup
	$(PY) -m dagster_project.demo --corpus synthtalk_large

test: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# bench_speak voices with the champion `make demo` registers; every benchmark runs, failures are listed
bench: setup
	@failed=; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache artifacts demo_out

dagster-ui: setup
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(VENV)/bin/dagster dev -m dagster_project.definitions

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db
