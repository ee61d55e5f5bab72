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

# READY=1: `make test` has installed everything and checked the services already.
install-dev: $(PY)
	$(if $(READY),,$(PY) -m pip install --quiet -e ".[all]")

run: install
	$(BIN)/xray demo

services:
	$(if $(READY),,bash scripts/test-services.sh)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

# The documentation site, built offline; --strict turns a broken link or a page missing
# from the nav into a failure.
docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The suite runs on PYTEST_WORKERS pytest-xdist processes (0: in this one): most of its
# time is spent waiting on servers, subprocesses and PostgreSQL. A test module stays whole
# on one worker (tests/conftest.py); the session's PostgreSQL database and the ports
# free_port() hands out are each worker's own. The workers share one PYTHONHASHSEED
# (printed, random unless set), so a set iterated in a parametrize collects the same tests
# on every worker.
PYTEST_WORKERS ?= 2
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder
# The SDK again on its pure-Python path (what runs where the C fast path was not built):
# its own tests and the fail-open ones (the server's and the delivery tests do not depend
# on the path); with the whole suite only, not when PYTEST_ARGS picks a part of it.
PURE_PYTHON_TESTS := tests/sdk tests/reliability/test_fail_open.py \
  tests/reliability/test_transport.py tests/reliability/test_fork.py

pytest: install-dev services
	@export PYTHONHASHSEED=$${PYTHONHASHSEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "PYTHONHASHSEED=$$PYTHONHASHSEED bash scripts/pytest.sh $(PYTEST_XDIST) $(PYTEST_ARGS)"; \
	bash scripts/pytest.sh $(PYTEST_XDIST) $(PYTEST_ARGS) || exit $$?; \
	if [ -z "$(PYTEST_ARGS)" ]; then \
	  echo "XRAY_SDK_PURE_PYTHON=1 bash scripts/pytest.sh -q $(PYTEST_XDIST) $(PURE_PYTHON_TESTS)"; \
	  XRAY_SDK_PURE_PYTHON=1 bash scripts/pytest.sh -q $(PYTEST_XDIST) $(PURE_PYTHON_TESTS); \
	fi

# pip and apt-get side by side (neither needs the other), then the checks and the suite.
test:
	@$(MAKE) --no-print-directory -j2 --output-sync=target install-dev services
	@$(MAKE) --no-print-directory READY=1 lint typecheck docs pytest

bench: $(PY)
	$(PY) -m pip install --quiet -e ".[sdk,api,bench]"
	$(PY) bench/sdk_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts .xray-demo site
