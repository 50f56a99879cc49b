# The two commands of the README:
#   make run   set up the environment and run the main job
#   (make serve: serve the newest run's API and console)
#   make test  set up the environment and pass the tests (what .ci/run calls)
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run serve test lint setup clean

#: the run `make serve` serves: the newest run folder unless RUN=... is given
RUN ?= $(shell ls -td runs/crackdown-* 2>/dev/null | head -1)
PORT ?= 8000

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# pip's and the build backend's notices (setuptools' editable-install box) go to $(VENV)/install.log,
	@# shown only when the install fails
	@echo "installing dajia and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==26.3 setuptools==84.2.1 \
		2>$(VENV)/install.log || { cat $(VENV)/install.log; exit 1; }
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' \
		2>>$(VENV)/install.log || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/dajia crackdown $(ARGS)

# serve the newest crackdown run (API and console) until Ctrl-C; says where it listens once ready
serve: $(STAMP)
	@test -n "$(RUN)" || { echo "no run to serve: run 'make run' first (or give RUN=runs/crackdown-...)"; exit 2; }
	DAJIA_HOME=$(RUN) $(VENV)/bin/dajia serve --data $(RUN)/data --port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: $(STAMP)
	bash scripts/ensure-browser
	test -f tests/console/js/node_modules/axe-core/axe.min.js || npm ci --prefix tests/console/js --no-audit --no-fund
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
