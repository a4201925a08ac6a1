"""User-facing errors. Each message is one line that names the file, layer or field
and says what to do; the CLI prints it as ``inkhue: error: ...`` and exits non-zero,
the server returns it as JSON, the plugin shows it in the docker."""

from __future__ import annotations


class InkHueError(Exception):
    """Base of every error the user should read (never a bare traceback)."""

    #: HTTP status the server answers with for this kind of error.
    http_status = 400


class InputError(InkHueError):
    """An input file, frame, hint image or option cannot be used."""


class ModelError(InkHueError):
    """A model file is missing, unreadable, or breaks the model contract."""

    http_status = 422


class OutputError(InkHueError):
    """An output cannot be written (e.g. it would overwrite an input)."""


class ResourceError(InkHueError):
    """Out of memory or similar: the message suggests a smaller working size."""

    http_status = 507


class ForbiddenError(InkHueError):
    """A server-side path outside the allowed root, file access switched off, or a
    request a browser sent for another site (403)."""

    http_status = 403
