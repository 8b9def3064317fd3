# make run  - install into .venv and start the sidecar in front of the bundled demo MCP server
#             (PORT=8080 ADMIN_PORT=8081 HOST=127.0.0.1 by default: make run PORT=9080 ADMIN_PORT=9081)
# make test - install everything (Python deps, npm test servers) and run the whole test suite
# make lint - ruff, and the import contracts of pyproject.toml (layers, no cycles)
# make perf-gate - instructions per call (callgrind) against bench/perf_budget.json; fails 3% over budget
# make reliability - every row of docs/reliability.md re-run, the table rewritten
# make bench - the benchmark matrix (a few minutes): bench/results/latest.json, bench/README.md, latency chart
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
ADMIN_PORT ?= 8081

.PHONY: install run test lint bench policy-test perf-gate reliability

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> [1/3] creating the virtual environment $(VENV)"
	python3 -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	$(PY) -m pip install -q -U pip
	@echo "==> [3/3] installing mcp-sidecar and its development tools (a minute or two the first time)"
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)
	@echo "==> installed: $(VENV)/bin/mcp-sidecar"

run: install
	$(VENV)/bin/mcp-sidecar serve --demo --listen $(HOST):$(PORT) --admin-listen $(HOST):$(ADMIN_PORT)

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
