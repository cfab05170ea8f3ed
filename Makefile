# Two commands: `make run` and `make test`. Each bootstraps its own virtualenv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run test lint bench node-deps browser clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## make run: web on 127.0.0.1:$${PORT:-8000} + RQ worker with scheduler (SQLite + embedded Redis by default)
run: install
	$(PY) -m connect_app run

node-deps:
	bash scripts/ensure-node-deps.sh

browser:
	bash scripts/ensure-chromium.sh

## make test: the whole suite (unit, API, contract with Prism, browser with Chromium)
test: install node-deps browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check connect_app workers tests bench
	$(PY) -m mypy

bench: install node-deps
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules instance test-artifacts .pytest_cache .mypy_cache .ruff_cache
