# ezmsg-lab: `make lab` opens the quickstart in JupyterLab; `make test` runs everything.
# Both set themselves up on a fresh Debian machine with Python 3.11.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VENV310 := .venv-ezmsg310
VENVNEW := .venv-newest
BIN := $(VENV)/bin
PORT ?= 8888
# The newest 3.10 pre-release (ezmsg-sigproc users run it), with pydantic (its [schema]
# extra) so its own settings coercion is on; pip picks the newest match.
EZMSG_PRE := ezmsg[schema]>=3.10.0b1,<3.11

# mkdocs-material prints a banner about its successor on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: lab dashboard docs docs-check docs-serve screenshots test typecheck test-fast test-newest newest-python lint bench browser js js-check bench-quick bench-compare clean reliability soak

# The newest CPython here that is newer than $(PYTHON): python3.14, 3.13 or 3.12 on PATH,
# then every pyenv version. Each candidate must run and report its version (pyenv's
# shims exist on PATH for versions that are not selected, and fail). Sets $$base (the
# baseline's version), $$best and $$found (empty if nothing is newer).
define FIND_NEWEST
base=$$($(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || exit 1; \
best=$$base; found=""; \
for cand in python3.14 python3.13 python3.12 $(wildcard $(HOME)/.pyenv/versions/*/bin/python3.1[2-9]); do \
  v=$$($$cand -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) || continue; \
  case "$$v" in 3.*) ;; *) continue ;; esac; \
  if [ "$$v" != "$$best" ] && [ "$$(printf '%s\n%s\n' "$$best" "$$v" | sort -V | tail -n 1)" = "$$v" ]; then \
    best=$$v; found=$$(command -v "$$cand"); \
  fi; \
done
endef

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]" "ezmsg==3.9.0"
	touch $@

$(VENV310)/.installed: pyproject.toml
	test -x $(VENV310)/bin/python || $(PYTHON) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install -q --upgrade pip
	$(VENV310)/bin/python -m pip install -q --pre -e ".[test]" "$(EZMSG_PRE)"
	touch $@

# The documentation site's generator (the `docs` extra), on top of the test install.
$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e ".[docs]" "ezmsg==3.9.0"
	touch $@

lab: $(VENV)/.installed
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) \
	  notebooks/quickstart.ipynb

# The dashboard notebook as a standalone page (Voila: outputs only, no code cells), on
# 127.0.0.1:$(PORT). Its kernel, and with it the Lab and the demo, stops with the server.
dashboard: $(VENV)/.installed
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(BIN)/voila notebooks/dashboard.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(PORT)

# Debian's chromium for the browser tests (installed when missing and we are root).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: chromium missing and not root; browser tests will be skipped"; fi; \
	fi

# mypy --strict over ezmsg_lab ([tool.mypy] in pyproject.toml; part of `make test`).
typecheck: $(VENV)/.installed
	$(BIN)/mypy

lint: $(VENV)/.installed
	$(BIN)/ruff check ezmsg_lab tests benchmarks
	$(BIN)/ruff format --check ezmsg_lab tests benchmarks

# The documentation site (mkdocs.yml) into site/, strict: a broken link, a missing reference
# or a docstring that does not render fails the build. Open site/index.html.
docs: $(VENV)/.docs-installed
	$(BIN)/mkdocs build --strict --site-dir site
	@echo "== open $(CURDIR)/site/index.html (or: make docs-serve)"

docs-serve: $(VENV)/.docs-installed
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(PORT)

# Part of `make test`: the strict build, then the check that every name in
# ezmsg_lab.__all__ has an entry in the built API reference (it reads site/).
docs-check: docs
	EZLAB_DOCS_SITE=$(CURDIR)/site $(BIN)/python -m pytest -q tests/unit/test_docs.py

# The guides' screenshots: run the browser tests that take them (tests/artifacts/), then
# copy the ones the docs show into docs/img/ (commit them).
SCREENSHOTS := notebook_topology_dashboard_clicked:dashboard notebook_topology_2:graph \
  forms_1_drawn_filter:form_filter scope_1_live:scope_live
screenshots: $(VENV)/.installed browser
	rm -f $(foreach pair,$(SCREENSHOTS),tests/artifacts/$(firstword $(subst :, ,$(pair))).png)
	$(BIN)/python -m pytest tests/browser/test_forms_jupyterlab.py \
	  tests/browser/test_scope_jupyterlab.py \
	  "tests/browser/test_notebooks_jupyterlab.py::test_notebook_runs_and_its_widgets_act_only_when_asked[topology]"
	mkdir -p docs/img
	@for pair in $(SCREENSHOTS); do \
	  src=tests/artifacts/$${pair%%:*}.png; dst=docs/img/$${pair##*:}.png; \
	  cp "$$src" "$$dst" && echo "$$src -> $$dst" || exit 1; \
	done

test: docs-check js-check typecheck $(VENV)/.installed $(VENV310)/.installed browser
	EZLAB_DOCS_SITE=$(CURDIR)/site $(BIN)/python -m pytest --durations=15 tests/unit tests/integration
	$(BIN)/python -m pytest tests/browser
	$(BIN)/python -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg
	@echo "== integration tests on $$($(VENV310)/bin/python -c 'import ezmsg.core as ez; print("ezmsg", ez.__version__)')"
	$(VENV310)/bin/python -m pytest -m "not heavy" tests/integration
	@$(MAKE) --no-print-directory test-newest

# The unit tests and the integration tests marked `interpreter` (start methods, unit
# processes, users' scripts, taps' pickling) again on the newest CPython found (see
# FIND_NEWEST), in $(VENVNEW) with ezmsg 3.9.0; rebuilt when that interpreter or
# pyproject.toml changes. The rest of the integration suite runs on the baseline only.
test-newest:
	@$(FIND_NEWEST); \
	if [ -z "$$found" ]; then \
	  echo "== newest CPython: skipped: no newer CPython found than $$base" \
	    "(looked for python3.14, python3.13, python3.12 on PATH and in ~/.pyenv/versions)"; \
	  exit 0; \
	fi; \
	echo "== unit tests and integration tests marked interpreter on CPython $$best ($$found)"; \
	if [ "$$(cat $(VENVNEW)/.python 2>/dev/null)" != "$$found" ] || [ ! -f $(VENVNEW)/.installed ] \
	    || [ pyproject.toml -nt $(VENVNEW)/.installed ]; then \
	  rm -rf $(VENVNEW) && "$$found" -m venv $(VENVNEW) \
	  && $(VENVNEW)/bin/python -m pip install -q --upgrade pip \
	  && $(VENVNEW)/bin/python -m pip install -q -e ".[test]" "ezmsg==3.9.0" \
	  && echo "$$found" > $(VENVNEW)/.python && touch $(VENVNEW)/.installed || exit 1; \
	fi; \
	$(VENVNEW)/bin/python -m pytest tests/unit \
	  && $(VENVNEW)/bin/python -m pytest -m "interpreter and not heavy" tests/integration

newest-python:
	@$(FIND_NEWEST); echo "$$found"

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit

# Faults, a 2-minute load, concurrent observers, fuzzing and the security checks, as one
# table (tests/reliability.py); the README carries the latest one.
reliability: $(VENV)/.installed
	$(BIN)/python -m tests.reliability --load-seconds 120 --markdown reliability.md

# The load test for 10 minutes (make test runs it for 30 s).
soak: $(VENV)/.installed
	EZMSG_LAB_LOAD_S=600 $(BIN)/python -m pytest -s tests/integration/test_load.py

# Every benchmark, 5 runs each: median and spread (min-max) beside raw ezmsg from the same
# runs; one JSON file per invocation in benchmarks/results/. RUNS=n to change.
RUNS ?= 5
bench: $(VENV)/.installed browser
	$(BIN)/python -m benchmarks --runs $(RUNS)

# Shorter measurements (settings, throughput), 3 runs: a rough check, not a figure to quote.
bench-quick: $(VENV)/.installed browser
	$(BIN)/python -m benchmarks --quick --runs 3

# What got slower beyond the spread between two results files (default: the two latest);
# OLD=... NEW=... to choose.
bench-compare: $(VENV)/.installed
	$(BIN)/python -m benchmarks.compare $(OLD) $(NEW)

# The graph widget's JavaScript: install the locked packages, bundle js/src into
# ezmsg_lab/widgets/static/graph.js (commit the result; tests/unit/test_js_bundle.py checks it).
js:
	cd js && npm ci --no-audit --no-fund && npm run build

# js/node_modules from the lockfile, when it is missing or older than js/package-lock.json.
js/node_modules/.installed: js/package-lock.json
	cd js && npm ci --no-audit --no-fund
	touch $@

# The JavaScript checks (part of `make test`): biome lint + format check (biome.json),
# tsc --noEmit over the // @ts-check sources (js/tsconfig.json), node's test runner on js/test.
js-check: js/node_modules/.installed
	cd js && npm run -s lint && npm run -s typecheck && npm test

clean:
	rm -rf $(VENV) $(VENV310) $(VENVNEW) site .cache
