"""The recovery folder of a live run, and the settings fixed for its life."""

from __future__ import annotations

from pathlib import Path

import orjson

from flows.options import env_name
from state.errors import ConfigError

STORE_FILE = "crm-triggers-store.json"
"""Written next to Bytewax's partition files when the store is made: its key groups."""


def recovery_store(path: str, key_groups: int) -> Path:
    """The folder, made if missing; ConfigError if it is a file or was made with other groups.

    `--key-groups` decides which key group owns each item: a store resumed with
    another count would look for items in the wrong group and turn most events into
    `unknown_item`. A store without the file (made before it existed) is adopted.
    """
    option = f"--recovery-dir ({env_name('recovery_dir')})"
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as bad:
        raise ConfigError(f"{option} {path}: cannot make the folder: {bad.strerror}") from None
    record = folder / STORE_FILE
    try:
        kept = orjson.loads(record.read_bytes()) if record.exists() else None
    except (OSError, orjson.JSONDecodeError) as bad:
        raise ConfigError(f"{option} {path}: cannot read {STORE_FILE}: {bad}") from None
    if kept is None:
        try:
            record.write_bytes(orjson.dumps({"key_groups": key_groups}))
        except OSError as bad:
            raise ConfigError(f"{option} {path}: cannot write: {bad.strerror}") from None
        return folder
    made_with = kept.get("key_groups") if isinstance(kept, dict) else None
    if made_with != key_groups:
        raise ConfigError(
            f"--key-groups ({env_name('key_groups')}) {key_groups}: the recovery store {path} "
            f"was made with --key-groups {made_with}, which is fixed for the life of a store; "
            f"run with --key-groups {made_with}, or start a new --recovery-dir"
        )
    return folder
