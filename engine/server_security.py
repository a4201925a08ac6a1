"""Who may talk to the engine's server, and which files it may touch (docs/HTTP_API.md,
"Who may talk to it").

- Binding: anything but loopback needs a token (``check_bind``).
- ``GuardMiddleware``, before any route: a loopback-bound server answers only requests
  addressed to loopback (its Host header: no DNS rebinding); requests a browser sends for
  another site are refused (``Origin`` / ``Sec-Fetch-Site``); with a token, every request
  needs ``Authorization: Bearer <token>`` (except /health and the API description on a
  loopback server); request bodies are counted while they stream in and refused past the
  limit.
- ``resolve_under_root``: a client's server-side path never leaves ``--root``.
"""

from __future__ import annotations

import glob
import hmac
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inkhue_engine.errors import ForbiddenError, InputError

if TYPE_CHECKING:
    from inkhue_engine.server import ServerConfig

#: Paths a loopback-bound server answers without the token (no pixels, no files).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
#: Host header names that address this machine's loopback.
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or name to bind to) is this machine's loopback only."""
    host = host.strip().strip("[]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public interface


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on anything but loopback without a token (InputError)."""
    if not is_loopback(host) and not token:
        raise InputError(
            f"--host {host!r} exposes the server beyond this machine: set a token with "
            f"--token or the INKHUE_TOKEN environment variable, or bind to 127.0.0.1"
        )


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The server's error answer: ``{"error": message}`` with ``status``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _host_is_loopback(host_header: str | None) -> bool:
    """Whether a Host header names loopback (``localhost``, ``127.x.x.x``, ``[::1]``)."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):  # [::1]:8765
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.lower() in LOOPBACK_NAMES or is_loopback(host)


def _host_port(authority: str) -> tuple[str, str]:
    """(lower-case host, port or '') of a Host header or an Origin's authority."""
    authority = authority.strip().lower()
    if authority.startswith("["):  # [::1]:8765
        end = authority.find("]")
        host, rest = authority[1:end], authority[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else ""
    host, _, port = authority.partition(":")
    return host, port


def _cross_site(headers: Headers) -> str | None:
    """Why a request sent by a browser on behalf of another site is refused (None: it is not).

    Browsers add ``Origin`` to every cross-origin request (and to same-origin POSTs),
    and ``Sec-Fetch-Site`` to every request; the Krita plugin, the CLI and scripts send
    neither. A request from a web page the artist happens to have open therefore
    carries an Origin that is not this server's own (the Host it addressed), or
    ``Sec-Fetch-Site: cross-site`` / ``same-site``: such a request must not drive the
    engine (a simple multipart POST needs no CORS preflight). The server's own pages
    (/docs) are same-origin and still work.
    """
    origin = headers.get("origin")
    if origin is not None:
        scheme, sep, authority = origin.strip().partition("://")
        default = {"http": "80", "https": "443"}.get(scheme.lower(), "") if sep else ""
        o_host, o_port = _host_port(authority)
        h_host, h_port = _host_port(headers.get("host", ""))
        same = (
            bool(default)
            and bool(o_host)
            and (o_host, o_port or default) == (h_host, h_port or default)
        )
        if not same:
            return (
                f"Origin {origin[:100]!r} is refused: this server answers its own pages and "
                f"local programs (the Krita plugin, scripts), not requests sent by web pages "
                f"of other sites"
            )
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return (
            f"Sec-Fetch-Site {site!r} is refused: this server does not answer requests that "
            f"web pages of other sites make a browser send"
        )
    return None


class GuardMiddleware:
    """Host check, cross-site (Origin) check, bearer token and streamed request-size
    limit, before any route runs.

    A pure ASGI middleware so the body keeps streaming: the limit is enforced on the
    Content-Length header first, then by counting the bytes as they arrive (a client
    may send no length, or lie about it).
    """

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.token = config.token.encode() if config.token else None
        self.loopback = is_loopback(config.host)
        self.max_body = config.max_body_bytes

    def _too_large(self) -> str:
        return (
            f"request body is over the server's limit of {self.max_body} bytes: send smaller "
            f"frames (or a smaller batch per job), or start the server with a higher limit"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.loopback and not _host_is_loopback(headers.get("host")):
            response = json_error(
                400,
                f"Host header {headers.get('host')!r} is refused: this server only answers "
                f"requests addressed to localhost / 127.0.0.1",
            )
            await response(scope, receive, send)
            return
        refused = _cross_site(headers)
        if refused is not None:
            await json_error(403, refused)(scope, receive, send)
            return
        if self.token is not None and not (self.loopback and scope["path"] in OPEN_PATHS):
            scheme, _, credentials = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credentials.strip().encode(), self.token
            ):
                response = json_error(
                    401,
                    "missing or wrong token: send the header 'Authorization: Bearer <token>' "
                    "with the token the server was started with",
                    {"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await json_error(400, f"Content-Length {length!r} is not a number")(
                    scope, receive, send
                )
                return
            if declared > self.max_body:
                await json_error(413, self._too_large())(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # An HTTPException passes FastAPI's body parsing unchanged and
                    # becomes the JSON 413 in the exception handler.
                    raise HTTPException(413, self._too_large())
            return message

        await self.app(scope, counting_receive, send)


def resolve_under_root(raw: str, root: Path | None, what: str) -> Path:
    """A client's server-side path (or glob), made absolute and checked to lie under ``root``.

    Relative paths are taken from ``root``; symlinks and '..' are resolved before the
    check. Glob patterns keep their wildcard part, which may not contain '..'.
    Raises ForbiddenError (403) outside ``root`` or when there is no root at all.
    """
    if root is None:
        raise ForbiddenError("server-side files are switched off: start the server with --root DIR")
    if "\x00" in raw:
        raise InputError(f"{what}: {raw!r} holds a NUL byte, which no file name can hold")
    root = root.resolve()
    path = Path(raw)
    if not path.is_absolute():
        path = root / path
    parts = path.parts
    magic = next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))
    base, rest = Path(*parts[:magic]), parts[magic:]
    if ".." in rest:
        raise ForbiddenError(
            f"{what}: {raw!r}: '..' after a wildcard could leave the server's --root folder"
        )
    resolved = base.resolve()
    if not resolved.is_relative_to(root):
        raise ForbiddenError(f"{what}: {raw!r} lies outside the server's --root folder")
    return resolved.joinpath(*rest)
