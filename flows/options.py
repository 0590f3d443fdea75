"""Options declared once: a settings field gives its flag, its variable and its help.

A setting is a field of a frozen `Settings` dataclass declared with
`option(...)`: its default, its help and how its text is read. From that one
declaration come its flag (`seen_window`: `--seen-window`), its environment
variable (`CRM_TRIGGERS_SEEN_WINDOW`), its line in `--help` and the check of
its value. A flag wins over its variable; an empty value is the default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, TypeVar

from state.errors import ConfigError

PREFIX = "CRM_TRIGGERS_"


def env_name(option: str) -> str:
    return PREFIX + option.upper().replace("-", "_")


# Readers of a value: (label naming the setting, value as given) -> value, or ConfigError.
Reader = Callable[[str, Any], Any]


def positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return number


def non_negative_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise ConfigError(f"{name}: expected an integer >= 0, got {value!r}")
    return number


def seconds(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or number != number:
        raise ConfigError(f"{name}: expected a number of seconds, got {value!r}")
    return number


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def split_env_list(value: str | None, separator: str = ";") -> list[str]:
    """A list from an environment variable (';'-separated unless said otherwise)."""
    return [part.strip() for part in (value or "").split(separator) if part.strip()]


def items(name: str, value: Any) -> tuple[str, ...]:
    """A list given as a list, or as one ';'-separated text."""
    return tuple(split_env_list(value) if isinstance(value, str) else value)


def one_of(*choices: str) -> Reader:
    def read(name: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{name}: expected one of {choices}, got {value!r}")
        return str(value)

    return read


# The declaration of an option -------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """How a settings field is given: its flag, its variable and its help."""

    help: str
    """The help line; `{env}` marks where the variable is named, else it is appended."""
    read: Reader | None = None
    """Checks and converts the value (the default too); None keeps the text as it is."""
    metavar: str | None = None
    many: bool = False
    """A repeatable flag; its variable is a list separated by `separator`."""
    separator: str = ";"
    switch: bool = False
    """A flag without a value; its variable is 1, true, yes or on."""
    env: str | None = ""
    """The variable's option name: "" for this option's own, None for no variable."""
    cli_env: bool = True
    """Whether the command line falls back on the variable (replay's files do not)."""
    show_env: bool = True
    """Whether the help names the variable (where the command line reads it)."""
    required: str | None = None
    """Why the setting is needed, if it has no default."""
    choices: tuple[str, ...] | None = None
    """The values allowed, checked on the command line and in the variable."""
    type: Callable[[str], Any] | None = None
    """argparse's own conversion, for options only ever given as flags."""
    positional: bool = False
    """An optional argument without a flag (`produce FILE`)."""
    flag: str | None = None
    """The flag where the field's name cannot be one (`--from` of a field `start`)."""


OPTION = "crm_triggers.option"


def option(default: Any, help: str, *, repr: bool = True, **how: Any) -> Any:
    """A settings field given by a flag and an environment variable (see `Option`).

    `repr=False` keeps a value that may hold a secret out of the settings' `repr`.
    """
    return field(default=default, metadata={OPTION: Option(help, **how)}, repr=repr)


def redefault(owner: type, name: str, default: Any) -> Any:
    """The option `name` of `owner` with another default, for a command that differs."""
    [found] = [f for f in fields(owner) if f.name == name]
    return field(default=default, metadata=found.metadata, repr=found.repr)


S = TypeVar("S", bound="Settings")


@dataclass(frozen=True, repr=False)
class Settings:
    """The base of every settings class: built from flags, the environment or a mapping.

    A subclass may define `check(self)` for rules across its fields; every class's
    own `check` runs once the fields are read.
    """

    def __post_init__(self) -> None:
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("check")
            if check is not None:
                check(self)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{type(self).__name__}({shown})"

    @classmethod
    def options(cls) -> Iterator[tuple[Field[Any], Option]]:
        for f in fields(cls):
            spec = f.metadata.get(OPTION)
            if spec is not None:
                yield f, spec

    @staticmethod
    def variable(f: Field[Any], spec: Option) -> str | None:
        if spec.env is None:
            return None
        return env_name(spec.env or f.name)

    @staticmethod
    def flag_of(f: Field[Any], spec: Option) -> str:
        return spec.flag or "--" + f.name.replace("_", "-")

    @classmethod
    def label(cls, f: Field[Any], spec: Option) -> str:
        variable = cls.variable(f, spec)
        flag_name = f.name if spec.positional else cls.flag_of(f, spec)
        return f"{flag_name} ({variable})" if variable else flag_name

    @classmethod
    def build(cls: type[S], values: Mapping[str, Any]) -> S:
        """The settings from values by field name (text or typed; None or "" for the default)."""
        given: dict[str, Any] = {}
        for f in fields(cls):
            spec = f.metadata.get(OPTION)
            value = values.get(f.name)
            if spec is None:
                if value is not None:
                    given[f.name] = value
                continue
            if value is None or value == "" or (spec.many and not value):
                if spec.required:
                    raise ConfigError(f"{cls.label(f, spec)}: required, {spec.required}")
                value = f.default if f.default is not MISSING else None
            if value is not None and spec.choices is not None:
                value = one_of(*spec.choices)(cls.label(f, spec), value)
            if value is not None and spec.read is not None:
                value = spec.read(cls.label(f, spec), value)
            elif spec.many and value is not None:
                value = tuple(value)
            given[f.name] = value
        return cls(**given)

    @classmethod
    def env_values(cls, env: Mapping[str, str], only_cli: bool = False) -> dict[str, Any]:
        """Each option's value in the environment, by field name (absent ones left out)."""
        out: dict[str, Any] = {}
        for f, spec in cls.options():
            variable = cls.variable(f, spec)
            if variable is None or (only_cli and not spec.cli_env):
                continue
            text = env.get(variable)
            if text is None:
                continue
            if spec.many:
                out[f.name] = split_env_list(text, spec.separator)
            elif spec.switch:
                out[f.name] = flag(text)
            else:
                out[f.name] = text
        return out

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str]) -> S:
        """The settings from environment variables alone (for `python -m bytewax.run`)."""
        return cls.build(cls.env_values(env))

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace, env: Mapping[str, str]) -> S:
        """The settings from parsed flags, each falling back on its variable."""
        values = cls.env_values(env, only_cli=True)
        for f, _ in cls.options():
            given = getattr(args, f.name, None)
            if given is not None:
                values[f.name] = given
        return cls.build(values)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One argument per option, in field order, with its help and variable."""
        for f, spec in cls.options():
            variable = cls.variable(f, spec)
            shown = variable if variable and spec.cli_env and spec.show_env else None
            default = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
            help_text = spec.help.replace("{default}", default)
            if "{env}" in help_text:
                help_text = help_text.replace("{env}", shown or "")
            elif shown:
                help_text += f" [{shown}]"
            kwargs: dict[str, Any] = {"help": help_text}
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
            if spec.positional:
                parser.add_argument(f.name, nargs="?", **kwargs)
                continue
            if spec.switch:
                kwargs.update(action="store_true", default=None)
            else:
                if spec.many:
                    kwargs["action"] = "append"
                if spec.choices is not None:
                    kwargs["choices"] = spec.choices
                if spec.type is not None:
                    kwargs["type"] = spec.type
            if spec.required and not (spec.cli_env and variable):
                kwargs["required"] = True
            parser.add_argument(cls.flag_of(f, spec), dest=f.name, **kwargs)
