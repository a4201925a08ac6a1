"""The plugin's log: a rotating file next to Krita's own data (tracebacks go here)."""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler

LOGGER_NAME = "inkhue"


def default_log_path() -> str:
    """``<app data>/inkhue/inkhue.log`` (inside Krita: ~/.local/share/krita/inkhue/...)."""
    from .qt import QtCore

    base = QtCore.QStandardPaths.writableLocation(
        QtCore.QStandardPaths.StandardLocation.AppDataLocation
    )
    return os.path.join(base or os.path.expanduser("~"), "inkhue", "inkhue.log")


def setup_logging(
    path: str | None = None, max_bytes: int = 1_000_000, backups: int = 3
) -> logging.Logger:
    """The ``inkhue`` logger writing to a rotating file at ``path`` (set up once per path)."""
    logger = logging.getLogger(LOGGER_NAME)
    path = os.path.abspath(path or default_log_path())
    for handler in logger.handlers:
        if isinstance(handler, RotatingFileHandler) and handler.baseFilename == path:
            return logger
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger
