# The two README commands (make run, make test) plus lint / bench helpers.
# The virtual environment is made on first use; requirements are installed again only when a
# requirements file changes (stamp files in .venv/).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.stamp-requirements
DEV_STAMP := $(VENV)/.stamp-requirements-dev
# Parallel test workers (pytest-xdist); 1 runs the suite in one process.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
BENCH_ARGS ?=
# If set, `make test` writes pytest's own exit status there (make itself always exits 2 on failure).
PYTEST_STATUS_FILE ?=

export TEST_DATABASE_URL
export DATABASE_URL

.PHONY: run test lint bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $(RUN_STAMP) $@

run: $(RUN_STAMP)
	$(BIN)/streamlit run app.py

# pytest exit 5 ("no tests collected") is a failure like any other non-zero exit.
# --import-mode=importlib: test files in different folders may share a base name (test_records.py).
test: $(DEV_STAMP)
	@workers=""; if [ "$(PYTEST_WORKERS)" -gt 1 ] 2>/dev/null; then workers="-n $(PYTEST_WORKERS)"; fi; \
	status=0; $(BIN)/python -m pytest -q --import-mode=importlib $$workers $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected (pytest exit 5)" >&2; fi; \
	if [ -n "$(PYTEST_STATUS_FILE)" ]; then echo $$status > "$(PYTEST_STATUS_FILE)"; fi; \
	exit $$status

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

# Benchmarks (not tests): ratios measured in one run; BENCH_ARGS="--size 1000,10000 --database-url URL".
bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
