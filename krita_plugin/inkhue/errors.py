"""The plugin's user-facing error: one line that names the document/layer and what to do."""

from __future__ import annotations


class PluginError(Exception):
    """An error the panel shows as is (no traceback): bad document, layer, setting, answer."""
