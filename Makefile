# The two commands of the README's quick start. Each sets itself up on a fresh
# Debian machine: a virtualenv in .venv with the project and its test tools.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CAPTURE ?= captures/examples/echo.pcap captures/examples/nagle-on.pcap
FUZZ_SECONDS ?= 600

.PHONY: report test lab lint fuzz clean

report: $(STAMP)  ## analyze two example captures shipped in captures/examples
	$(BIN)/sockinspect analyze $(CAPTURE)

lab: $(STAMP)  ## run every lab scenario on loopback, capture it, answer Part 4 (captures/lab/)
	$(BIN)/sockinspect run-and-capture lab

test: $(STAMP)  ## lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

fuzz: $(STAMP)  ## the structure-aware fuzzer for FUZZ_SECONDS (600); inputs that fail are saved in tests/data/fuzz
	$(BIN)/python tests/fuzzing.py --seconds $(FUZZ_SECONDS) --save tests/data/fuzz

lint: $(STAMP)
	$(BIN)/ruff check .

$(STAMP): pyproject.toml scripts/bootstrap.sh
	./scripts/bootstrap.sh $(PYTHON) $(VENV)
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
