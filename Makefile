# leadstream developer and CI entry points. `make test` is what CI runs (via .ci/run).
#
#   make venv           .venv with python3.11 and `pip install -e ".[dev]"` (again only
#                       when pyproject.toml changes; the stamp is .venv/.installed)
#   make system-deps    redis-server, prometheus, prometheus-alertmanager (apt, as root)
#   make demo           the embedded end-to-end demo
#   make test           services up, the whole suite except `slow`, services down (always)
#   make services-up / services-down
#   make lint           ruff + mypy
#   make bench          benchmarks (JSON results)
#
# Variables: PYTHON (python3.11), PYTEST_ARGS (extra pytest arguments), BENCH_ARGS.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LEADSTREAM := $(BIN)/leadstream
PACKAGES := streaming agents online_models sinks reporting config cli api
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help venv system-deps demo test services-up services-down lint bench

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): run 'make system-deps'" \
		"(installs python3.11-venv on Debian)" >&2; rm -rf $(VENV); exit 1; }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

system-deps:
	@bash scripts/install-system-deps.sh

demo: system-deps venv
	$(LEADSTREAM) demo

# Services come up before pytest and go down afterwards whatever happened; the
# target exits with pytest's status (or with `services up`'s if that failed).
test: system-deps venv
	@status=0; \
	$(LEADSTREAM) services up || status=$$?; \
	if [ $$status -eq 0 ]; then $(BIN)/pytest -m "not slow" $(PYTEST_ARGS) || status=$$?; fi; \
	$(LEADSTREAM) services down || true; \
	exit $$status

services-up: system-deps venv
	$(LEADSTREAM) services up

services-down: venv
	$(LEADSTREAM) services down

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy $(PACKAGES)

bench: system-deps venv
	$(LEADSTREAM) bench $(BENCH_ARGS)
