#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest against a real Kafka broker.
# Uses CRM_TRIGGERS_BROKERS when set; otherwise starts (and afterwards stops)
# the local single-node broker of scripts/kafka/broker.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== cargo fmt"
if (cd native && cargo fmt --version >/dev/null 2>&1); then
    (cd native && cargo fmt --check)
else
    echo "rustfmt is not installed: the Rust formatting check is skipped"
fi

started_broker=0
if [[ -z "${CRM_TRIGGERS_BROKERS:-}" ]]; then
    export CRM_KAFKA_PYTHON="${CRM_KAFKA_PYTHON:-$(command -v python)}"
    if ! bash scripts/kafka/broker.sh status >/dev/null 2>&1; then
        bash scripts/kafka/broker.sh start
        started_broker=1
    fi
    export CRM_TRIGGERS_BROKERS="127.0.0.1:${CRM_KAFKA_PORT:-9092}"
fi
stop_broker() { if [[ $started_broker == 1 ]]; then bash scripts/kafka/broker.sh stop; fi; }
trap stop_broker EXIT

echo "== pytest"
python -m pytest -p no:cacheprovider "$@"
