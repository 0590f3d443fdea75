"""The `crm-triggers` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bytewax.testing import run_main

from connectors.jsonl import ReplayInputs
from connectors.summary import Summary
from flows.replay import print_summary, replay_flow
from flows.settings import PROGRESS_MIN_BYTES, ReplaySettings, env_name
from state.errors import ConfigError

EXIT_USAGE = 2


def _engine_options(parser: argparse.ArgumentParser) -> None:
    for option, what in (
        ("key-groups", "key groups the items are spread over; fixed for a recovery store"),
        ("seen-window", "event ids remembered per item to drop producer retries"),
        ("max-record-bytes", "larger records are dead letters (too_large)"),
    ):
        parser.add_argument(
            f"--{option}",
            default=os.environ.get(env_name(option)),
            help=f"{what} [{env_name(option)}]",
        )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="crm-triggers", description="CRM stage triggers as a streaming job."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    replay = commands.add_parser(
        "replay",
        help="decide JSON Lines event logs against an automation log",
        description="Replay event logs: transitions to --out, dead letters to --dlq, "
        "a summary to stderr.",
    )
    replay.add_argument(
        "--automation",
        action="append",
        required=True,
        metavar="FILE",
        help="automation log: .jsonl, .jsonl.gz, a folder of them, or -",
    )
    replay.add_argument(
        "--events",
        action="append",
        required=True,
        metavar="FILE",
        help="event log (repeatable; several are merged by occurred_at)",
    )
    replay.add_argument(
        "--out", default="-", metavar="FILE", help="transitions as JSON Lines (default: stdout)"
    )
    replay.add_argument("--dlq", metavar="FILE", help="dead letters as JSON Lines")
    replay.add_argument(
        "--what-if",
        action="store_true",
        help="the latest version of every automation record, in force from the beginning",
    )
    _engine_options(replay)
    return top


def replay(args: argparse.Namespace) -> int:
    values = dict(vars(args))
    inputs = ReplayInputs.from_paths(args.automation, args.events)
    values["progress"] = sys.stderr.isatty() and inputs.total_bytes() >= PROGRESS_MIN_BYTES
    settings = ReplaySettings.build(values)
    result: list[Summary] = []

    def report(summary: Summary) -> None:
        result.append(summary)
        print_summary(summary)

    run_main(replay_flow(settings, report))
    if settings.dlq is None and result and result[0].dead_letters:
        sys.stderr.write("note: dead letters were counted but not kept; use --dlq FILE\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "replay":
            return replay(args)
    except ConfigError as bad:
        sys.stderr.write(f"crm-triggers: error: {bad}\n")
        return EXIT_USAGE
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
