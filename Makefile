# TunedIn: `make run` serves the site, `make test` runs the whole suite (lint first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVSTACK := $(PY) -m devstack

.PHONY: install run test screenshots lint format services stop-services status seed train bench-cf bench-cf-interactions bench-seq bench-load bench-soak bench-scale clean

install: $(STAMP)

# requirements.txt is `-r requirements/dev.txt`, which is `-r base.txt` plus the dev tools.
$(STAMP): requirements.txt requirements/base.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: install
	$(DEVSTACK) serve

# ruff, then the architecture: the import contracts in pyproject.toml (docs/architecture.md).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright).
test: lint
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(DEVSTACK) run -- $(PY) -m pytest $(PYTEST_ARGS)

# Refresh the README's screenshots from a running `make run` (in another terminal).
screenshots: install
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(PY) -m devstack.screenshots --url http://127.0.0.1:8000 --out docs/screenshots

services: install
	$(DEVSTACK) start

stop-services: install
	$(DEVSTACK) stop

status: install
	$(DEVSTACK) status

# Both migrate first: a fresh clone has an empty database.
seed: install
	$(DEVSTACK) run --keep -- $(PY) manage.py migrate --noinput
	$(DEVSTACK) run --keep -- $(PY) manage.py seed_demo

train: install
	$(DEVSTACK) run --keep -- $(PY) manage.py migrate --noinput
	$(DEVSTACK) run --keep -- $(PY) manage.py train --kind all

bench-cf: install
	$(DEVSTACK) run -- $(PY) manage.py benchmark_cf --dataset hetrec-lastfm-2k --path ../shared/data/lastfm-hetrec2k

# The HetRec interactions alone (no tags, friends or artists): the "adjacency" form of the data.
bench-cf-interactions: install
	$(DEVSTACK) run -- $(PY) manage.py benchmark_cf --dataset hetrec-lastfm-2k --path ../shared/data/lastfm-hetrec2k --no-side-info --out bench/results/cf-hetrec-lastfm-2k-interactions.json

bench-seq: install
	$(DEVSTACK) run -- $(PY) manage.py benchmark_seq --dataset hetrec-lastfm-2k-tags --path ../shared/data/lastfm-hetrec2k

# The real stack under load (wrk) and under load with faults; each starts what it needs.
bench-load: install
	command -v wrk >/dev/null || (apt-get update && apt-get install -y --no-install-recommends wrk)
	$(PY) bench/load.py

bench-soak: install
	$(PY) bench/soak.py --duration 600

# The demo world seeded, trained and served at each scale, in a database of its own per scale
# (bench/scale.py; hours at scales 10 and 30). Fewer: make bench-scale SCALES=1,3
SCALES ?= 1,3,10,30
bench-scale: install
	command -v wrk >/dev/null || (apt-get update && apt-get install -y --no-install-recommends wrk)
	$(PY) bench/scale.py --scales $(SCALES)

clean: stop-services
	rm -rf var
