"""Every setting of the job, built in one place from command-line flags and the environment.

Each option has an environment variable (`CRM_TRIGGERS_<NAME>`); a flag wins
over its variable. Bad values fail at start with the setting's name and the fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.records import DEFAULT_MAX_RECORD_BYTES
from flows.dataflow import DEFAULT_KEY_GROUPS
from state.board import DEFAULT_SEEN_WINDOW
from state.errors import ConfigError

PREFIX = "CRM_TRIGGERS_"
PROGRESS_MIN_BYTES = 20 << 20


def env_name(option: str) -> str:
    return PREFIX + option.upper().replace("-", "_")


def positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return number


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class EngineSettings:
    """Settings of the decision step, shared by replay and live runs."""

    key_groups: int = DEFAULT_KEY_GROUPS  # CRM_TRIGGERS_KEY_GROUPS
    seen_window: int = DEFAULT_SEEN_WINDOW  # CRM_TRIGGERS_SEEN_WINDOW
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES  # CRM_TRIGGERS_MAX_RECORD_BYTES

    @staticmethod
    def fields_from(values: Mapping[str, Any]) -> dict[str, int]:
        out = {}
        for name, default in (
            ("key_groups", DEFAULT_KEY_GROUPS),
            ("seen_window", DEFAULT_SEEN_WINDOW),
            ("max_record_bytes", DEFAULT_MAX_RECORD_BYTES),
        ):
            value = values.get(name)
            out[name] = (
                default if value is None else positive_int(f"--{name.replace('_', '-')}", value)
            )
        return out


@dataclass(frozen=True)
class ReplaySettings(EngineSettings):
    automation: tuple[str, ...] = ()  # CRM_TRIGGERS_AUTOMATION (os.pathsep-separated)
    events: tuple[str, ...] = ()  # CRM_TRIGGERS_EVENTS (os.pathsep-separated)
    out: str = "-"  # CRM_TRIGGERS_OUT
    dlq: str | None = None  # CRM_TRIGGERS_DLQ
    what_if: bool = False  # CRM_TRIGGERS_WHAT_IF
    progress: bool = False

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> ReplaySettings:
        if not values.get("automation"):
            raise ConfigError(
                "--automation (CRM_TRIGGERS_AUTOMATION): required, the automation log"
            )
        if not values.get("events"):
            raise ConfigError("--events (CRM_TRIGGERS_EVENTS): required, at least one event log")
        return cls(
            automation=tuple(values["automation"]),
            events=tuple(values["events"]),
            out=values.get("out") or "-",
            dlq=values.get("dlq"),
            what_if=bool(values.get("what_if")),
            progress=bool(values.get("progress")),
            **cls.fields_from(values),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReplaySettings:
        def paths(name: str) -> list[str]:
            return [p for p in env.get(env_name(name), "").split(os.pathsep) if p]

        return cls.build(
            {
                "automation": paths("automation"),
                "events": paths("events"),
                "out": env.get(env_name("out")),
                "dlq": env.get(env_name("dlq")),
                "what_if": flag(env.get(env_name("what_if"))),
                "progress": sys.stderr.isatty(),
                "key_groups": env.get(env_name("key_groups")),
                "seen_window": env.get(env_name("seen_window")),
                "max_record_bytes": env.get(env_name("max_record_bytes")),
            }
        )
