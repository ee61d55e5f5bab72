# The two commands of the README:
#   make run   - install into .venv, start the API on SQLite, run the demo pipelines,
#                print where to look; the server keeps running until Ctrl-C.
#   make test  - install what the tests need (incl. Debian chromium), check PostgreSQL,
#                then lint, type-check and run the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=

.PHONY: run test install install-dev services lint typecheck docs pytest bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e ".[sdk,api]"

install-dev: $(PY)
	$(PY) -m pip install --quiet -e ".[all]"

run: install
	$(BIN)/xray demo

services:
	bash scripts/test-services.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

# The documentation site, built offline; --strict turns a broken link or a page missing
# from the nav into a failure.
docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

pytest: install-dev services
	bash scripts/pytest.sh $(PYTEST_ARGS)
	# The SDK again on its pure-Python path (what runs where the C fast path was not built):
	# its own tests and the fail-open ones (the server's and the delivery tests do not depend
	# on the path); the whole suite only, not when PYTEST_ARGS picks a part of it.
	if [ -z "$(PYTEST_ARGS)" ]; then \
	  XRAY_SDK_PURE_PYTHON=1 bash scripts/pytest.sh -q tests/sdk \
	    tests/reliability/test_fail_open.py tests/reliability/test_transport.py \
	    tests/reliability/test_fork.py; fi

test: install-dev services lint typecheck docs pytest

bench: $(PY)
	$(PY) -m pip install --quiet -e ".[sdk,api,bench]"
	$(PY) bench/sdk_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts .xray-demo site
