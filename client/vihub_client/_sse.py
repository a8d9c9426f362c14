"""An incremental parser for ``text/event-stream`` (the WHATWG server-sent events format).

Fed decoded lines (as ``httpx.Response.iter_lines`` yields them), it returns complete
events; comments (``: keep-alive``) and ``retry:`` fields are handled here so the sync and
async waiters only see events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.data) if self.data else None
        except ValueError:
            return None


class SSEParser:
    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> Event | None:
        """Feed one line (without its line break); returns an event when a blank line ends one."""
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data and not self._event:
                self._id = None
                return None
            event = Event(event=self._event or "message", data="\n".join(self._data), id=self._id)
            if self._id is not None:
                self.last_event_id = self._id
            self._event, self._data, self._id = "", [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None
