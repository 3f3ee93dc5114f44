"""Structured logs: one JSON object per line (``spillway --log-format json``).

Every line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and
``message``; a line logged while the engine runs a command, a job or a handler also has the ids
of what runs (``instance_id``, ``activity_id``, ``job_id``, ``attempt``..., see
``engine.core.observe.LOG_FIELDS``), from the log context ``observe.step`` sets, or given
explicitly with ``extra={"instance_id": ...}`` (which wins). An exception's traceback is
``exception``. Anything else passed in ``extra`` that JSON can hold is written too.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from engine.core import observe

#: Attributes every ``LogRecord`` has: not written as extra fields.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """A ``logging.Formatter`` writing each record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = observe.current_fields()
        for name in observe.LOG_FIELDS:
            value = record.__dict__.get(name, context.get(name))
            if value is not None:
                out[name] = value
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in out and not name.startswith("_"):
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def install(level: int, *, stream: Any = None) -> logging.Handler:
    """Log JSON lines on ``stream`` (stderr by default) from the root logger: the engine's
    loggers (``spillway.*``) at ``level``, everything else at WARNING or above."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # a record propagates to the handler at its own logger's level
    logging.getLogger("spillway").setLevel(level)
    return handler


__all__ = ["JsonFormatter", "install"]
