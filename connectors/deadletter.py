"""Dead letters: the records that could not take effect, with why and where from."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: a file and line, or a topic, partition and offset."""

    file: str | None = None
    line: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def as_dict(self) -> dict[str, object]:
        if self.topic is not None:
            return {"topic": self.topic, "partition": self.partition, "offset": self.offset}
        return {"file": self.file, "line": self.line}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    code: str
    message: str
    raw: bytes
    origin: Origin
    item: str | None = None

    def to_json(self) -> bytes:
        try:
            record, encoding = self.raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            record, encoding = base64.b64encode(self.raw).decode("ascii"), "base64"
        body: dict[str, object] = {
            "code": self.code,
            "message": self.message,
            "origin": self.origin.as_dict(),
            "record": record,
            "encoding": encoding,
        }
        if self.item is not None:
            body["item"] = self.item
        return orjson.dumps(body)
