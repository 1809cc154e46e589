"""Logging for the entry points (processing.py, app.py, scripts): configured once, undone on exit.

Library modules only ever call logging.getLogger(...); they never add handlers or change levels.
An entry point wraps its work in `project_logging(...)`, which routes the project's logger to its
handler and puts everything back afterwards, so an entry point called in-process (by a test, or by
another program) leaves no global state behind.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

PROJECT_LOGGER = "verustoolkit"


@contextmanager
def project_logging(handler: logging.Handler, level: int) -> Iterator[logging.Logger]:
    """The project's logger writes to `handler` alone (not also to the root logger) while inside."""
    logger = logging.getLogger(PROJECT_LOGGER)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.handlers[:], level_before, logger.propagate = saved
        logger.setLevel(level_before)
