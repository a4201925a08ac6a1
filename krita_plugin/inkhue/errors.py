"""The plugin's user-facing error: one line that names the document/layer and what to do."""

from __future__ import annotations

from collections.abc import Callable


class PluginError(Exception):
    """An error the panel shows as is (no traceback): bad document, layer, setting, answer.

    ``fix``: ``(button label, action)`` when the plugin can fix the cause itself on the
    artist's click (e.g. convert a grayscale image to RGB); the panel offers it and runs
    the colorize again after it.
    """

    def __init__(self, message: str, fix: tuple[str, Callable[[], str]] | None = None) -> None:
        super().__init__(message)
        self.fix = fix
