# Two entry points: `make demo` (the main job on the reference starter) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test examples lint tools bench fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf demo-out/blueprint-dir
	$(BIN)/msgen init demo-out/blueprint-dir --starter reference --force
	$(BIN)/msgen render demo-out/blueprint-dir/blueprint.yaml -o demo-out
	@echo "--- what msgen wrote into demo-out/:"
	@cd demo-out && find . -type f -not -path './blueprint-dir/*' | sort

# the real programs the tests run: Debian packages when root, else say what to install
tools:
	@bash scripts/install-tools.sh

test: $(STAMP) tools
	$(BIN)/ruff check msgen tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

examples: $(STAMP)
	$(BIN)/python scripts/make_examples.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# the fuzz test at length: hostile mutations of the starter blueprints (tests/test_fuzz.py)
FUZZ_EXAMPLES ?= 50000
fuzz: $(STAMP)
	MSGEN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_fuzz.py
