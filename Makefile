# Two entry points on a fresh machine: `make sample` and `make test`.
# Everything installs into .venv on first use (Python 3.11 or 3.12 as python3).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install sample test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Replay the bundled sample: summary on stderr, transitions and dead letters in out/.
sample: $(STAMP)
	@mkdir -p out
	$(BIN)/crm-triggers replay --automation samples/automation.jsonl \
		--events samples/events.jsonl --out out/transitions.jsonl --dlq out/dead-letters.jsonl
	@echo "first transitions (out/transitions.jsonl):"
	@head -n 3 out/transitions.jsonl
	@echo "first dead letters (out/dead-letters.jsonl):"
	@head -n 2 out/dead-letters.jsonl | cut -c1-240

# The whole suite: lint, types, unit, property, flow and integration tests.
# Starts the local Kafka broker (fetched from Maven Central) unless
# CRM_TRIGGERS_BROKERS names one.
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python scripts/bench_replay.py

clean:
	rm -rf $(VENV) out .cache/bench
