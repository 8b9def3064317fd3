# make run  - install into .venv and start the sidecar in front of the bundled demo MCP server
# make test - install everything (Python deps, npm test servers) and run the whole test suite
# make lint - ruff, and the import contracts of pyproject.toml (layers, no cycles)
# make perf-gate - instructions per call (callgrind) against bench/perf_budget.json; fails 3% over budget
# make reliability - every row of docs/reliability.md re-run, the table rewritten
# make bench - the benchmark matrix (a few minutes): bench/results/latest.json, bench/README.md, latency chart
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench policy-test perf-gate reliability

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: install
	$(VENV)/bin/mcp-sidecar serve --demo

test: install
	bash tests/e2e/install_tools.sh
	sh tests/e2e/conformance/install.sh
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

policy-test: install
	$(VENV)/bin/mcp-sidecar policy test policies/

bench: install
	$(PY) -m pip install -q -e '.[dev,bench]'
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || echo "nginx not found: the ref-* targets will be skipped (apt-get install nginx-light)"
	$(PY) -m bench.run

perf-gate: install
	$(PY) -m bench.perf_gate

reliability: install
	$(PY) -m bench.reliability
