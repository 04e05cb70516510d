# Two commands set everything up on a fresh machine with Python 3.11 and pip:
#   make demo   - install, build a database from seeds/, and show recommendations
#   make test   - install with the test extra and run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.toml
RUN    := $(BIN)/recommender --config $(CONFIG)
# The demo's own database: its papers and example reader stay out of your setup's db/recommender.sqlite.
DEMO   := $(RUN) --database-url sqlite:///db/demo.sqlite

.PHONY: demo test test-fast bench bench-scale soak lint docs install install-test browser screenshots clean help

help:
	@echo "make demo | make test | make test-fast | make bench | make bench-scale | make soak | make lint | make docs | make screenshots | make clean"

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing Debian's python3-venv" >&2; \
	  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }

# Dependencies are reinstalled only when pyproject.toml changes; the package itself every
# time (a real, non-editable install: templates and migrations ship inside it).
$(VENV)/.deps-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet ".[postgres]"
	@touch $@

$(VENV)/.deps-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet ".[test]"
	@touch $@

install: $(VENV)/.deps-runtime
	$(BIN)/pip install --quiet --no-deps --force-reinstall .

install-test: $(VENV)/.deps-test
	$(BIN)/pip install --quiet --no-deps --force-reinstall .

demo: install
	$(DEMO) init
	$(DEMO) ingest seeds/*.txt
	$(DEMO) star --from-config
	$(DEMO) recommend --limit 10
	$(DEMO) digest preview --out preview/digest.html --text preview/digest.txt

# Headless Chromium for the browser tests, from Debian's packages (no browser download).
# Where it cannot be installed (not root, no apt) those tests skip with the reason.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium and chromium-driver for the browser tests" >&2; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "could not install chromium: browser tests will be skipped" >&2; \
	  else echo "chromium not installed: browser tests will be skipped" >&2; fi; \
	fi

# The suite runs in one process per core (pytest-xdist; TEST_WORKERS=0 runs it in this one);
# each process's PostgreSQL tests get a database of their own (tests/conftest.py).
TEST_WORKERS ?= auto

test: install-test browser
	RECOMMENDER_TEST_WHEEL=1 $(BIN)/pytest -p no:cacheprovider -n $(TEST_WORKERS) -m "not soak" $(PYTEST_ARGS)

# The fast tier: the Python API against a tmp_path SQLite file and a local SMTP server (under a minute).
test-fast: install-test
	$(BIN)/pytest -p no:cacheprovider -m fast $(PYTEST_ARGS)

# The fixed digest of the golden test in headless Chromium at 390 and 1200 px, light and dark
# (not part of `make test`): PNGs to look at after changing the templates.
screenshots: install-test browser
	$(BIN)/python tests/screenshots.py preview/screenshots

bench: install-test
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk not installed: the endpoint benchmark uses the Python load generator" >&2
	$(BIN)/python bench/run_all.py

# PostgreSQL at $$RECOMMENDER_BENCH_PG_URL (a database of its own: dropped and made again);
# SCALE_READERS="10000 50000 100000" picks the sizes, SCALE_WORKERS="1 2" the worker processes.
bench-scale: install-test
	$(BIN)/pip install --quiet ".[postgres]"
	$(BIN)/python bench/scale.py $(SCALE_READERS)

soak: install-test
	RECOMMENDER_TEST_WHEEL=1 $(BIN)/pytest -p no:cacheprovider -m soak $(PYTEST_ARGS)

# ruff, mypy, bandit, and the generated manual: README's configuration and command tables
# and docs/CLI.md must match the code (`$(BIN)/python scripts/gen_docs.py` rewrites them).
lint: install-test
	$(BIN)/ruff check recommender tests bench scripts
	$(BIN)/mypy
	$(BIN)/bandit -q -r recommender
	$(BIN)/python scripts/gen_docs.py --check

docs: install-test
	$(BIN)/python scripts/gen_docs.py

clean:
	rm -rf $(VENV) build dist db/*.sqlite db/*.sqlite-* preview tests/artifacts
