"""Logging set-up: loguru everywhere, stdlib `logging` routed into it.

Messages are constant strings; what varies goes into bound fields (`logger.bind(key=...)`), so a log line can
be searched for by its message and filtered by its fields. `json=True` gives one JSON object per line for
production; the default is a readable line for a terminal.
"""

from __future__ import annotations

import logging
import sys

from loguru import logger

_HUMAN_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{name}</cyan> "
    "{message} <dim>{extra}</dim>"
)


class _InterceptHandler(logging.Handler):
    """Send records of libraries that log through stdlib `logging` to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(*, level: str = "info", json: bool = False) -> None:
    """Configure loguru once for the whole process (idempotent)."""
    logger.remove()
    if json:
        logger.add(sys.stderr, level=level.upper(), serialize=True)
    else:
        logger.add(sys.stderr, level=level.upper(), format=_HUMAN_FORMAT, colorize=sys.stderr.isatty())
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
