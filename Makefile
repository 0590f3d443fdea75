# Two entry points on a fresh machine: `make sample` and `make test`.
# Everything installs into .venv on first use (Python 3.11 or 3.12 as python3).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# The compiled board (native/, Rust): rebuilt when its sources change. Needs cargo.
NATIVE_SRC := native/Cargo.toml native/Cargo.lock native/pyproject.toml native/crm_triggers_native.pyi $(wildcard native/src/*.rs)
NATIVE_STAMP := $(VENV)/.native-$(shell cat $(NATIVE_SRC) | cksum | cut -d' ' -f1)
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: install sample test lint bench clean

install: $(STAMP) $(NATIVE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) to build native/, or run with --engine python"; exit 1; }
	$(BIN)/pip install --quiet ./native
	rm -f $(VENV)/.native-*
	touch $@

# Replay the bundled sample: summary on stderr; transitions, stage history and dead letters in out/.
sample: install
	@mkdir -p out
	$(BIN)/crm-triggers replay --automation samples/automation.jsonl \
		--events samples/events.jsonl --out out/transitions.jsonl --dlq out/dead-letters.jsonl \
		--history out/history.jsonl
	@echo "first transitions (out/transitions.jsonl):"
	@head -n 3 out/transitions.jsonl
	@echo "first stage history records (out/history.jsonl):"
	@head -n 2 out/history.jsonl
	@echo "first dead letters (out/dead-letters.jsonl):"
	@head -n 2 out/dead-letters.jsonl | cut -c1-240
	$(BIN)/crm-triggers report --history out/history.jsonl --transitions out/transitions.jsonl \
		--automation samples/automation.jsonl --html out/report.html > out/report.txt
	@echo "report: out/report.txt (text) and out/report.html (open it in a browser)"

# The whole suite: lint, types, unit, property, flow and integration tests.
# Starts the local Kafka broker (fetched from Maven Central) unless
# CRM_TRIGGERS_BROKERS names one.
test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/test.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python scripts/bench_replay.py

clean:
	rm -rf $(VENV) out .cache/bench
