"""The `report` and `diff` commands: their options and handlers.

`flows.cli` calls `add_commands` on its sub-command parser and dispatches
through `COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb

from analytics.diff import DiffInputs, build_diff, diff_text, to_json_line
from analytics.figures import Scope
from analytics.load import Skipped, connect
from analytics.render import SECTIONS, to_csv, to_json, to_text
from analytics.report import ReportInputs, build_report
from analytics.sources import opened_inputs
from state.errors import ConfigError

BROKERS_ENV = "CRM_TRIGGERS_BROKERS"
UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_instant(text: str, option: str) -> datetime:
    """An RFC 3339 time with a zone, as naive UTC (the tables hold UTC without zone)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option}: expected an RFC 3339 time such as 2026-11-01T00:00:00Z, got {text!r}"
        ) from None
    if value.tzinfo is None:
        raise ConfigError(f"{option}: the time {text!r} needs a zone (Z or +HH:MM)")
    return value.astimezone(UTC).replace(tzinfo=None)


def parse_duration(text: str, option: str) -> float:
    """`7d`, `36h`, `90min`, `45s`, `2w` (or plain seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*", text)
    if match is None:
        raise ConfigError(f"{option}: expected a duration such as 7d, 36h, 90min, got {text!r}")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def _input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--brokers",
        default=os.environ.get(BROKERS_ENV),
        metavar="HOST:PORT[,...]",
        help=f"Kafka bootstrap servers, for kafka:TOPIC inputs [{BROKERS_ENV}]",
    )
    parser.add_argument(
        "--kafka-option",
        action="append",
        metavar="KEY=VALUE",
        help="a librdkafka option passed straight through (SASL, TLS...); repeatable",
    )


def add_commands(commands: Any) -> None:
    """Add `report` and `diff` to the `crm-triggers` sub-commands."""
    report = commands.add_parser(
        "report",
        help="funnels, time in stage, moves, trigger fires, cohorts from stage history",
        description="Funnels, time in stage, moves, trigger fires, stalled items and weekly "
        "cohorts from stage-history (and transition) logs. "
        "FILE: .jsonl, .jsonl.gz, a folder of them, -, or kafka:TOPIC with --brokers.",
    )
    report.add_argument(
        "--history",
        action="append",
        required=True,
        metavar="FILE",
        help="stage-history log (repeatable; read in the order given)",
    )
    report.add_argument(
        "--transitions",
        action="append",
        metavar="FILE",
        help="transition log: fires and directions of our moves (default: the history's)",
    )
    report.add_argument(
        "--automation",
        action="append",
        metavar="FILE",
        help="automation log: stage order and semantics, triggers that never fired",
    )
    report.add_argument("--from", dest="start", metavar="T", help="keep records with at >= T")
    report.add_argument("--to", dest="end", metavar="T", help="keep records with at < T")
    report.add_argument(
        "--as-of", metavar="T", help="when open stays are measured (default: the latest at)"
    )
    report.add_argument(
        "--stalled",
        default="7d",
        metavar="DURATION",
        help="an open process stay older than this is stalled (default 7d)",
    )
    report.add_argument("--tenant", metavar="T", help="only this tenant")
    report.add_argument(
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="text tables (default), one JSON object, or CSV tables",
    )
    report.add_argument(
        "--section", choices=tuple(SECTIONS), help="with --format csv: only this table"
    )
    report.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    _input_options(report)

    compare = commands.add_parser(
        "diff",
        help="what changed between two transition logs (a what-if against the current table)",
        description="Join two transition logs by id: added, removed, changed transitions, "
        "fires per trigger, the from/to matrix; with history, items whose last stage differs "
        "and the change in Reached and time in stage.",
    )
    compare.add_argument("--base", required=True, metavar="FILE", help="transitions of the base")
    compare.add_argument("--other", required=True, metavar="FILE", help="transitions to compare")
    compare.add_argument("--base-history", metavar="FILE", help="stage history of the base")
    compare.add_argument("--other-history", metavar="FILE", help="stage history of the other")
    compare.add_argument("--format", choices=("text", "json"), default="text")
    compare.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    compare.add_argument(
        "--items-out",
        metavar="FILE",
        help="changed items with their first differing event, as JSON Lines",
    )
    _input_options(compare)


def report(args: argparse.Namespace) -> int:
    if args.section and args.format != "csv":
        raise ConfigError("--section goes with --format csv")
    scope = Scope(
        start=None if args.start is None else parse_instant(args.start, "--from"),
        end=None if args.end is None else parse_instant(args.end, "--to"),
        as_of=None if args.as_of is None else parse_instant(args.as_of, "--as-of"),
        stalled_s=parse_duration(args.stalled, "--stalled"),
        tenant=args.tenant,
    )
    if scope.start and scope.end and scope.start >= scope.end:
        raise ConfigError("--from must be earlier than --to")
    skipped = Skipped()
    with opened_inputs(args.brokers, args.kafka_option) as inputs:
        files = ReportInputs(
            history=[p for name in args.history for p in inputs.paths(name)],
            transitions=[p for name in args.transitions or () for p in inputs.paths(name)],
            automation=[p for name in args.automation or () for p in inputs.paths(name)],
        )
        built = _queried(lambda: build_report(connect(), files, scope, skipped))
    if args.tenant is not None and not built["pipelines"]:
        raise ConfigError(f"--tenant {args.tenant}: no history records of that tenant")
    if args.format == "json":
        sys.stdout.buffer.write(to_json(built))
    elif args.format == "csv":
        sys.stdout.write(to_csv(built, args.section))
    else:
        sys.stdout.write(to_text(built))
    if args.html:
        from analytics.page import report_page

        _write(args.html, report_page(built))
    for line in skipped.lines():
        sys.stderr.write(f"crm-triggers: {line}\n")
    return 0


def _queried(run: Callable[[], Any]) -> Any:
    """DuckDB failures (a file vanished, out of memory) as one-line errors."""
    try:
        return run()
    except duckdb.Error as failed:
        raise ConfigError(str(failed).strip().splitlines()[0]) from None


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as page:
            page.write(text)
    except OSError as failed:
        raise ConfigError(f"{path}: cannot be written ({failed.strerror})") from None


def diff(args: argparse.Namespace) -> int:
    if (args.base_history is None) != (args.other_history is None):
        raise ConfigError("give both --base-history and --other-history, or neither")
    with opened_inputs(args.brokers, args.kafka_option) as inputs:
        files = DiffInputs(
            base=inputs.paths(args.base),
            other=inputs.paths(args.other),
            base_history=None if args.base_history is None else inputs.paths(args.base_history),
            other_history=(
                None if args.other_history is None else inputs.paths(args.other_history)
            ),
        )
        skipped = Skipped()
        compared = _queried(lambda: build_diff(connect(), files, skipped))
    if args.format == "json":
        sys.stdout.buffer.write(to_json(compared.summary))
    else:
        sys.stdout.write(diff_text(compared.summary))
    if args.items_out:
        _write(args.items_out, "".join(to_json_line(item) for item in compared.items))
    if args.html:
        from analytics.page import diff_page

        _write(args.html, diff_page(compared.summary))
    for line in skipped.lines():
        sys.stderr.write(f"crm-triggers: {line}\n")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"report": report, "diff": diff}
