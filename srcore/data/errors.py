"""Errors raised while reading a data set: a bad file, or a hub source that cannot be reached."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file cannot be read as the format it was declared to be.

    The message names the file, the line (where there is one) and the problem, so a user can
    open the file and fix it without reading our code.
    """

    default_kind = "file"

    def __init__(
        self,
        problem: str,
        source: str | Path | None = None,
        line: int | None = None,
        kind: str | None = None,
        unit: str = "line",
    ):
        self.problem = problem
        self.source = None if source is None else str(source)
        self.line = line
        self.kind = kind or self.default_kind  # "file", or "hub source" for a `datasets` id
        self.unit = unit  # "line" in a file, "row" in a hub data set
        where = []
        if self.source is not None:
            where.append(f"{self.kind} '{self.source}'")
        if line is not None:
            where.append(f"{unit} {line}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)

    def __reduce__(self):  # keeps pickling (multiprocessing, Celery results) working
        return (type(self), (self.problem, self.source, self.line, self.kind, self.unit))


class DataSourceUnavailable(DataFormatError):
    """A `datasets` hub source was asked for but cannot be fetched (offline or unreachable)."""

    default_kind = "hub source"
