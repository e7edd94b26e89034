"""Logging for every leadstream command: structlog, plus stdlib loggers routed through it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from config.settings import Settings

#: Libraries that log through the standard library; they are noisy below WARNING.
_STDLIB_LOGGERS = ("faust", "aiokafka", "kafka", "mode", "asyncio", "urllib3", "apscheduler")


def configure_logging(settings: Settings, to: Path | None = None) -> None:
    """Configure structlog and the standard library's logging from ``settings``.

    Lines go to stderr (stdout stays free for command output such as
    ``--json``), or appended to the file ``to`` (the demo keeps its terminal for
    progress and the summary): JSON objects when ``settings.log_format ==
    "json"`` or when written to a file, coloured console lines otherwise. structlog loggers filter at ``settings.log_level``;
    stdlib loggers (faust, aiokafka, …) pass through the same renderer at
    WARNING or above. Safe to call more than once.
    """
    level = logging.getLevelName(settings.log_level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if settings.log_format == "json" or to is not None:
        renderer = structlog.processors.JSONRenderer()
        shared += [structlog.processors.dict_tracebacks]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # Locals in tracebacks could print secrets (a PII key, a DSN's password).
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )

    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger if to is None else _file_logger(to),
        cache_logger_on_first_use=False,
    )

    handler: logging.Handler = _CurrentStderrHandler()
    if to is not None:
        to.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(to, encoding="utf-8")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    stdlib_level = max(level, logging.WARNING)
    root.setLevel(stdlib_level)
    for name in _STDLIB_LOGGERS:
        logging.getLogger(name).setLevel(stdlib_level)


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Looked up per logger, not at configure time: pytest and rich swap sys.stderr.
    return structlog.PrintLogger(file=sys.stderr)


def _file_logger(path: Path) -> Callable[..., structlog.WriteLogger]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Line-buffered: a reader (tail -f, a test) sees each line when it is logged.
    stream = path.open("a", encoding="utf-8", buffering=1)
    return lambda *_args: structlog.WriteLogger(file=stream)


class _CurrentStderrHandler(logging.StreamHandler[Any]):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record is emitted."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass
