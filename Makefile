# numcfg developer entry points. `make run` and `make test` work on a fresh Debian 12
# machine as root: they install what is missing, build/reuse the Asterisk rig, and go.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= examples/numcfg.yaml
# Dev-only default; set your own in the environment for anything real.
export NUMCFG_ARI_PASSWORD ?= numcfg-dev-secret
export NUMCFG_ARI_USER ?= numcfg

.PHONY: setup system-deps rig rig-down run call test unit browser integration faults packaging lint format bench bench-capacity soak clean

system-deps:
	bash scripts/system-deps

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: system-deps $(BIN)/.installed

rig: setup
	NUMCFG_RIG_CONFIG=$(CONFIG) docker/rig up

rig-down:
	docker/rig down

## Start numcfg on the embedded defaults (rig, SQLite, example config), ready for a call.
run: rig
	@echo "numcfg: place a call from another shell with:  make call"
	$(BIN)/numcfg run -c $(CONFIG)

## A test call into the example number: the caller side stays 15 s while numcfg handles it
## (greeting, then the queue's hold music: nobody has started a workday), then the call's
## details are printed.
call:
	docker/rig cli "channel originate Local/+33185000000@numcfg-inbound application Wait 15"
	@sleep 18; $(BIN)/numcfg calls -c $(CONFIG) --limit 3

## The whole test suite: unit tests, integration tests and the fault suite (tests/faults,
## collected once through pyproject's testpaths = ["tests"]) against the real Asterisk rig.
test: rig
	$(BIN)/pytest -q -ra

unit: setup
	$(BIN)/pytest -q tests/unit

## The console in Debian's chromium (headless), numcfg in-process; no Asterisk needed.
browser: setup
	$(BIN)/pytest -q tests/browser

integration: rig
	$(BIN)/pytest -q tests/integration

## Issue 17's fault suite on the rig (about 7 minutes; stopped past 15): prints and writes
## its figures (tests/faults/figures.json).
faults: rig
	timeout --signal=INT --kill-after=60 900 $(BIN)/pytest -q tests/faults

## The wheel as users get it (built, installed in a fresh venv, install-asterisk run from
## it), the systemd unit and the Compose file; no Asterisk needed (about a minute).
packaging: setup
	$(BIN)/pytest -q tests/packaging

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -p no:cacheprovider tests/unit/test_import_contract.py

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## The benchmark's extra (matplotlib for the figures) on top of the dev install.
$(BIN)/.bench-installed: pyproject.toml $(BIN)/.installed
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

## Issue 15's benchmark on the rig (about 10 minutes): CPU per call numcfg vs dialplan,
## 3 alternating rounds (bench/run.py; BENCH_HYBRID=1 adds the ARI-for-decisions floor),
## then the capacity run with its figures (bench-capacity).
bench: rig $(BIN)/.bench-installed
	$(BIN)/python bench/run.py
	$(MAKE) --no-print-directory bench-capacity

## Offered load rising step by step, both variants (about 6 minutes): bench/capacity.json,
## then bench/capacity.png and bench/latency.png drawn from it.
bench-capacity: rig $(BIN)/.bench-installed
	$(BIN)/python bench/capacity.py
	$(BIN)/python bench/plot.py

## numcfg for SOAK_MINUTES (default 10) at half its measured capacity (bench/capacity.json;
## SOAK_RATE=R to choose): RSS, fds, threads, asyncio tasks each minute, flat or not.
soak: rig $(BIN)/.bench-installed
	$(BIN)/python bench/soak.py $(if $(SOAK_RATE),--rate $(SOAK_RATE))

clean:
	docker/rig down || true
	rm -rf $(VENV) sounds/build sounds/build-moh
