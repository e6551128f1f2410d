"""structlog: JSON lines by default (one object a line, for log pipelines), a console renderer for humans.

The stdlib loggers (kopf's own, "kopf" and "kopf.objects", and the fleet's "ecsalb.fleet") go to the same
stream in the same format: a line kopf logs about an object carries its namespace and name, as ours do.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (tests and the demo replace it), as structlog's does."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _CurrentStderr:
    """A file that is always sys.stderr as it is now: structlog's PrintLogger keeps the file it was given, and a
    stream replaced since (pytest's capture of an earlier test, the demo's) may be closed by then."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _kopf_object(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """kopf's per-object logger (kopf._core.actions.loggers.ObjectLogger) puts the object in `record.k8s_ref`."""
    ref = getattr(event_dict.get("_record"), "k8s_ref", None)
    if isinstance(ref, dict):
        for key in ("namespace", "name"):
            if ref.get(key):
                event_dict.setdefault(key, ref[key])
    return event_dict


class _KopfLines(logging.Filter):
    """kopf's per-object lines, as the operator's logs should read (the ticks are counted by the fleet's metrics):
    - "Timer '...' succeeded." comes once per resource per tick (73k of 83k lines in 13 minutes at 1,000
      resources): a quiet tick is no line; what it found (drift, a correction, an error) is logged by the operator.
    - "Handler '...' failed permanently" is always a spec the user must fix (the operator raises kopf's
      PermanentError for a SpecError only, and has logged the field and the fix as a warning): a warning, so an
      alert on error-level lines fires on the operator's faults, not on a user's typo."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kopf.objects"):
            return True
        message = record.getMessage()
        if record.levelno == logging.INFO and message.startswith("Timer ") and message.endswith(" succeeded."):
            return False
        if record.levelno >= logging.ERROR and " failed permanently" in message:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure(fmt: str = "json", level: str = "info") -> None:
    renderer = (structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if fmt == "console"
                else structlog.processors.JSONRenderer(sort_keys=True))
    stamp = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamp, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setLevel(level.upper())
    handler.addFilter(_KopfLines())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.stdlib.add_logger_name,
                           _kopf_object, *stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)] + [handler]
    if root.getEffectiveLevel() > handler.level:  # never quieter than asked (a test may have made it louder)
        root.setLevel(handler.level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # else a line per liveness/readiness probe


def get(**bound: object) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger("ecsalb").bind(**bound)
