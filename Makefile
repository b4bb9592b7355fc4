# Two entry points: `make demo` (the main job on the reference starter) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps, one per install: `make demo` installs only what running msgen needs, `make test`
# adds the test toolchain. Each is redone when pyproject.toml changes, so `make demo` then
# `make test` (or an edited pyproject.toml) installs what is missing.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test examples lint tools bench fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# the test extra holds msgen's own dependencies too, so it also satisfies the run stamp
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(RUN_STAMP) $(TEST_STAMP)

demo: $(RUN_STAMP)
	rm -rf demo-out/blueprint-dir
	$(BIN)/msgen init demo-out/blueprint-dir --starter reference --force
	$(BIN)/msgen render demo-out/blueprint-dir/blueprint.yaml -o demo-out
	@echo "--- what msgen wrote into demo-out/:"
	@cd demo-out && find . -type f -not -path './blueprint-dir/*' | sort

# the real programs the tests run: Debian packages when root, else say what to install
tools:
	@bash scripts/install-tools.sh

test: $(TEST_STAMP) tools
	$(BIN)/ruff check msgen tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

examples: $(RUN_STAMP)
	$(BIN)/python scripts/make_examples.py

bench: $(RUN_STAMP)
	$(BIN)/python benchmarks/run.py

# the fuzz test at length: hostile mutations of the starter blueprints (tests/test_fuzz.py)
FUZZ_EXAMPLES ?= 50000
fuzz: $(TEST_STAMP)
	MSGEN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz.py
