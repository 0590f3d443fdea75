"""The `report` and `diff` commands: their settings and what runs them.

`flows.cli` lists each as one row of `COMMANDS`. The options are declared once
with `option(...)` (see `flows.options`); `--brokers` and the librdkafka
options are the shared Kafka client declarations. This module imports no
DuckDB and no chart renderer: `--help` and a bad option stay quick, and each
path imports what it uses when it runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from analytics.render import SECTIONS
from flows.options import option, redefault
from flows.settings import KafkaClientSettings
from state.errors import ConfigError

if TYPE_CHECKING:
    from analytics.sources import Inputs

UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
REPORT_FORMATS = ("text", "json", "csv")
DIFF_FORMATS = ("text", "json")


def parse_instant(name: str, text: Any) -> datetime:
    """An RFC 3339 time with a zone, as naive UTC (the tables hold UTC without zone)."""
    if isinstance(text, datetime):
        return text
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        raise ConfigError(
            f"{name}: expected an RFC 3339 time such as 2026-11-01T00:00:00Z, got {text!r}"
        ) from None
    if value.tzinfo is None:
        raise ConfigError(f"{name}: the time {text!r} needs a zone (Z or +HH:MM)")
    return value.astimezone(UTC).replace(tzinfo=None)


def parse_duration(name: str, text: Any) -> float:
    """`7d`, `36h`, `90min`, `45s`, `2w` (or plain seconds) as seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*", str(text))
    if match is None:
        raise ConfigError(f"{name}: expected a duration such as 7d, 36h, 90min, got {text!r}")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def _brokers() -> Any:
    """`--brokers` as every Kafka command declares it, but optional: only topics need it."""
    return redefault(KafkaClientSettings, "brokers", None)


def _log(help: str, required: str | None = None) -> Any:
    return option((), help, metavar="FILE", many=True, env=None, required=required)


@dataclass(frozen=True, repr=False)
class AnalyticsInputs(KafkaClientSettings):
    """A FILE is .jsonl, .jsonl.gz, a folder of them, -, or kafka:TOPIC (with --brokers)."""

    brokers: str | None = _brokers()  # type: ignore[assignment]  # optional here
    html: str | None = option(
        None, "also write a self-contained HTML page", metavar="FILE", env=None
    )

    def opened(self) -> Any:
        from analytics.sources import opened_inputs

        return opened_inputs(self.kafka if self.brokers else None)


@dataclass(frozen=True, repr=False)
class ReportSettings(AnalyticsInputs):
    """`crm-triggers report`: the logs, the window and how the report is written."""

    history: tuple[str, ...] = _log(
        "stage-history log (repeatable; read in the order given)", required="the history log"
    )
    transitions: tuple[str, ...] = _log(
        "transition log: fires and directions of our moves (default: the history's)"
    )
    automation: tuple[str, ...] = _log(
        "automation log: stage order and semantics, triggers that never fired"
    )
    # The times are read into datetimes, which are immutable (hence the noqa).
    start: datetime | None = option(  # noqa: RUF009
        None, "keep records with at >= T", metavar="T", flag="--from", env=None, read=parse_instant
    )
    end: datetime | None = option(  # noqa: RUF009
        None, "keep records with at < T", metavar="T", flag="--to", env=None, read=parse_instant
    )
    as_of: datetime | None = option(  # noqa: RUF009
        None,
        "when open stays are measured (default: the latest at)",
        metavar="T",
        env=None,
        read=parse_instant,
    )
    stalled: float = option(
        "7d",
        "an open process stay older than this is stalled (default {default})",
        metavar="DURATION",
        env=None,
        read=parse_duration,
    )
    tenant: str | None = option(None, "only this tenant", metavar="T", env=None)
    format: str = option(
        "text",
        "text tables (default), one JSON object, or CSV tables",
        choices=REPORT_FORMATS,
        env=None,
    )
    section: str | None = option(
        None, "with --format csv: only this table", choices=tuple(SECTIONS), env=None
    )
    stats: tuple[str, ...] = _log(
        "window records of the live statistics (kafka:crm.stage-stats): their merged "
        "time in stage against the exact figures"
    )

    def check(self) -> None:
        if self.section and self.format != "csv":
            raise ConfigError("--section goes with --format csv")
        if self.start and self.end and self.start >= self.end:
            raise ConfigError("--from must be earlier than --to")


@dataclass(frozen=True, repr=False)
class DiffSettings(AnalyticsInputs):
    """`crm-triggers diff`: two transition logs, optionally their histories."""

    base: str = option("", "transitions of the base", metavar="FILE", env=None, required="the base")
    other: str = option(
        "", "transitions to compare", metavar="FILE", env=None, required="the log to compare"
    )
    base_history: str | None = option(None, "stage history of the base", metavar="FILE", env=None)
    other_history: str | None = option(None, "stage history of the other", metavar="FILE", env=None)
    format: str = option(
        "text", "text (default) or one JSON object", choices=DIFF_FORMATS, env=None
    )
    items_out: str | None = option(
        None,
        "changed items with their first differing event, as JSON Lines",
        metavar="FILE",
        env=None,
    )

    def check(self) -> None:
        if (self.base_history is None) != (self.other_history is None):
            raise ConfigError("give both --base-history and --other-history, or neither")


def _paths(inputs: Inputs, names: tuple[str, ...]) -> list[str]:
    return [path for name in names for path in inputs.paths(name)]


def report(settings: ReportSettings) -> int:
    from analytics.figures import Scope
    from analytics.load import Skipped, connect
    from analytics.render import to_csv, to_json, to_text
    from analytics.report import ReportInputs, build_report

    scope = Scope(
        start=settings.start,
        end=settings.end,
        as_of=settings.as_of,
        stalled_s=settings.stalled,
        tenant=settings.tenant,
    )
    skipped = Skipped()
    with settings.opened() as inputs:
        files = ReportInputs(
            history=_paths(inputs, settings.history),
            transitions=_paths(inputs, settings.transitions),
            automation=_paths(inputs, settings.automation),
        )
        built = _queried(lambda: build_report(connect(), files, scope, skipped))
        if settings.stats:
            from analytics.windows import read_windows, window_closeness

            windows, not_windows = read_windows(_paths(inputs, settings.stats))
            built["stats"] = window_closeness(windows, built, settings.start, settings.end)
            if not_windows:
                sys.stderr.write(f"crm-triggers: --stats: {not_windows} lines not window records\n")
    if settings.tenant is not None and not built["pipelines"]:
        raise ConfigError(f"--tenant {settings.tenant}: no history records of that tenant")
    if settings.format == "json":
        sys.stdout.buffer.write(to_json(built))
    elif settings.format == "csv":
        sys.stdout.write(to_csv(built, settings.section))
    else:
        sys.stdout.write(to_text(built))
        if "stats" in built:
            from analytics.windows import closeness_text

            sys.stdout.write(closeness_text(built["stats"]))
    if settings.html:
        from analytics.page import report_page

        _write(settings.html, report_page(built))
    for line in skipped.lines():
        sys.stderr.write(f"crm-triggers: {line}\n")
    return 0


def diff(settings: DiffSettings) -> int:
    from analytics.diff import DiffInputs, build_diff, diff_text, to_json_line
    from analytics.load import Skipped, connect
    from analytics.render import to_json

    with settings.opened() as inputs:
        files = DiffInputs(
            base=inputs.paths(settings.base),
            other=inputs.paths(settings.other),
            base_history=(
                None if settings.base_history is None else inputs.paths(settings.base_history)
            ),
            other_history=(
                None if settings.other_history is None else inputs.paths(settings.other_history)
            ),
        )
        skipped = Skipped()
        compared = _queried(lambda: build_diff(connect(), files, skipped))
    if settings.format == "json":
        sys.stdout.buffer.write(to_json(compared.summary))
    else:
        sys.stdout.write(diff_text(compared.summary))
    if settings.items_out:
        _write(settings.items_out, "".join(to_json_line(item) for item in compared.items))
    if settings.html:
        from analytics.page import diff_page

        _write(settings.html, diff_page(compared.summary))
    for line in skipped.lines():
        sys.stderr.write(f"crm-triggers: {line}\n")
    return 0


def _queried(run: Callable[[], Any]) -> Any:
    """DuckDB failures (a file vanished, out of memory) as one-line errors."""
    import duckdb

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
