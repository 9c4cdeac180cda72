# make run   - create .venv, install the gateway and first-party plugins, serve config/manifold.toml
# make test  - the same plus dev extras and the npm test servers, then ruff, mypy --strict, pytest
# make bench - the benchmarks in bench/ (figures as ratios to calling backends directly)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NPM    := .cache/npm
PLUGINS := stdio http example database openapi workspace
EDITABLE := -e . $(foreach p,$(PLUGINS),-e plugins/$(p))
NPM_PACKAGES := @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-memory@2026.8.31 @modelcontextprotocol/conformance@0.1.13 @modelcontextprotocol/server-filesystem@2026.8.31

.PHONY: install dev run test lint bench check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml $(wildcard plugins/*/pyproject.toml)
	$(BIN)/pip install -q $(EDITABLE) mcp-server-time mcp-server-git
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]' -e 'plugins/database[postgres]'
	touch $@

$(NPM)/.installed: Makefile
	mkdir -p $(NPM)
	npm install --silent --no-audit --no-fund --prefix $(NPM) $(NPM_PACKAGES)
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev $(NPM)/.installed
	@command -v pg_ctlcluster >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || \
	  echo "PostgreSQL could not be installed: its tests will be skipped"

run: install $(NPM)/.installed   # also serves the demo notes API (plugins/openapi) on 127.0.0.1:8766 while the gateway runs
	mkdir -p data workspace
	$(BIN)/python -m manifold_openapi.demo --host 127.0.0.1 --port 8766 & demo=$$!; \
	trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/manifold serve   # the stdio servers it installs live in .venv/bin

check: install
	$(BIN)/manifold check

lint: dev
	$(BIN)/ruff check gateway plugins tests bench
	$(BIN)/mypy gateway $(foreach p,$(PLUGINS),plugins/$(p)/manifold_$(p))

test: lint   # ruff and mypy --strict first, then the whole suite
	$(BIN)/python -m pytest -q

bench: dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .cache data workspace
