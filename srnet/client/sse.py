"""Server-sent events: the line parser both clients read the job event stream with."""

from __future__ import annotations


class SSEParser:
    """Turns the lines of a text/event-stream into messages (the WHATWG rules we need: `event`,
    `data` (joined by newlines), `id`, `retry`, comments)."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self.last_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> tuple[str, str, str | None] | None:
        """One line without its end; answers (event, data, id) when a message is complete."""
        if line == "":
            if not self._data:
                self._event, self._id = "", None
                return None
            message = (self._event or "message", "\n".join(self._data), self._id)
            if self._id is not None:
                self.last_id = self._id
            self._event, self._data, self._id = "", [], None
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None
