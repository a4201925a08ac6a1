"""Asynchronous client of the engine's HTTP API (docs/HTTP_API.md) on QNetworkAccessManager.

Nothing here blocks: every call takes a callback that gets a ``Result`` once the
answer is in (on the Qt event loop), and returns a ``Call`` that can be aborted.
``AnimationJob`` chains the calls of a job (create, upload, poll, fetch, forget).

Errors are user-facing lines: the server's JSON ``{"error": ...}`` when it sent one,
or a sentence that says what to do when the engine cannot be reached.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .errors import PluginError
from .host import Keyframe
from .pixels import FrameLayout
from .qt import QtCore, QtNetwork, Signal, to_bytes

log = logging.getLogger("inkhue")

DEFAULT_URL = "http://127.0.0.1:8765"

QNetworkRequest = QtNetwork.QNetworkRequest
QNetworkReply = QtNetwork.QNetworkReply


@dataclass
class Result:
    """The outcome of one request. ``error`` is a user-facing line when ``ok`` is False."""

    ok: bool
    status: int = 0
    data: bytes = b""
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    value: Any = None  # the parsed JSON body, for JSON endpoints
    cancelled: bool = False


@dataclass
class ColorizeOptions:
    """The colorize options shared by ``POST /colorize`` and ``POST /jobs``.

    ``palette``: None = the model's own palette (if any), ``"none"`` = no palette,
    a list of sRGB hex strings = lock to those colours.
    """

    model: str | None = None
    task: str | None = None
    detail: float = 1.0
    regions: bool = True
    mirror: bool = True  # the engine also colors the frame's mirror and averages (steadier)
    output: str = "color"
    palette: list[str] | str | None = None

    def query(self) -> dict[str, str]:
        """The options as query parameters (only those that are set)."""
        q: dict[str, str] = {}
        if self.model:
            q["model"] = self.model
        if self.task:
            q["task"] = self.task
        q["detail"] = repr(float(self.detail))
        q["regions"] = "true" if self.regions else "false"
        q["mirror"] = "true" if self.mirror else "false"
        q["output"] = self.output
        if self.palette is not None:
            q["palette"] = (
                self.palette if isinstance(self.palette, str) else json.dumps(list(self.palette))
            )
        return q

    def job_fields(self) -> dict[str, Any]:
        """The options as fields of the ``POST /jobs`` JSON body."""
        body: dict[str, Any] = {
            "detail": float(self.detail),
            "regions": bool(self.regions),
            "mirror": bool(self.mirror),
            "output": self.output,
        }
        if self.model:
            body["model"] = self.model
        if self.task:
            body["task"] = self.task
        if self.palette is not None:
            body["palette"] = self.palette if isinstance(self.palette, str) else list(self.palette)
        return body


class Call:
    """A request in flight; ``abort()`` ends it with a cancelled ``Result``."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.aborted = False
        self.done = False
        self.request: tuple = ()

    def abort(self) -> None:
        if not self.done:
            self.aborted = True
            self.reply.abort()


def not_running_message(base_url: str) -> str:
    """The line shown when nothing listens at the engine's address."""
    return (
        f"The InkHue engine is not running at {base_url}: click Start engine or run `inkhue serve`"
    )


def multipart_body(parts: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of binary ``(name, data)`` parts and its Content-Type."""
    return form_data_body(
        [FormPart(name, data, f"{name}.raw", "application/octet-stream") for name, data in parts]
    )


@dataclass
class FormPart:
    """One part of a multipart/form-data body: a file part when ``filename`` is set."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def form_data_body(parts: list[FormPart]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type (names and file names are ASCII)."""
    boundary = "inkhue-" + uuid.uuid4().hex
    chunks: list[bytes] = []
    for part in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{part.name}"'
        if part.filename is not None:
            head += f'; filename="{part.filename}"'
        head += "\r\n"
        if part.content_type:
            head += f"Content-Type: {part.content_type}\r\n"
        chunks.append((head + "\r\n").encode("ascii"))
        chunks.append(bytes(part.data))
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def check_frame_answer(result: Result, expected: FrameLayout) -> str:
    """Empty string when a frame answer matches ``expected``, else a user-facing line."""
    h = result.headers
    got = (
        h.get("x-inkhue-width"),
        h.get("x-inkhue-height"),
        h.get("x-inkhue-channels"),
        h.get("x-inkhue-depth"),
        h.get("x-inkhue-order"),
    )
    want = (
        str(expected.width),
        str(expected.height),
        str(expected.channels),
        expected.depth,
        expected.order,
    )
    if got[0] is not None and got != want:
        return (
            f"The InkHue engine answered a {'/'.join(str(g) for g in got)} frame where "
            f"{'/'.join(want)} (width/height/channels/depth/order) was expected: "
            "update the engine and the plugin to the same version"
        )
    if len(result.data) != expected.nbytes:
        return (
            f"The InkHue engine answered {len(result.data)} bytes where {expected.nbytes} "
            f"({expected.describe()}) were expected: update the engine and the plugin "
            "to the same version"
        )
    return ""


class EngineClient(QtCore.QObject):
    """Calls the engine's HTTP API; every method is asynchronous (see module docstring)."""

    #: Inactivity limits (ms): a colorize answer comes only when the frame is done.
    SHORT_TIMEOUT_MS = 15_000
    LONG_TIMEOUT_MS = 30 * 60_000

    def __init__(self, base_url: str = DEFAULT_URL, token: str = "", parent=None) -> None:
        super().__init__(parent)
        self._manager = QtNetwork.QNetworkAccessManager(self)
        # One connection for all replies (no per-reply lambda holding the client: such a
        # cycle let a reply's deletion delete the client, and Qt abort, under PySide6).
        self._manager.finished.connect(self._reply_finished)
        self._calls: list[Call] = []
        self.base_url = DEFAULT_URL
        self.token = ""
        self.set_server(base_url, token)

    def set_server(self, base_url: str, token: str = "") -> None:
        """Use another engine address (``http://host:port``) and bearer token."""
        url = (base_url or DEFAULT_URL).strip().rstrip("/")
        if "://" not in url:
            url = "http://" + url
        self.base_url = url
        self.token = (token or "").strip()
        # A proxy from the environment must never see requests to a local engine.
        host = urlsplit(url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            self._manager.setProxy(
                QtNetwork.QNetworkProxy(QtNetwork.QNetworkProxy.ProxyType.NoProxy)
            )

    def pending(self) -> int:
        """How many requests are in flight."""
        return len(self._calls)

    # -- endpoints -------------------------------------------------------------------------

    def health(self, callback: Callable[[Result], None]) -> Call:
        """``GET /health`` -> ``{"status", "version", "provider", "models"}``."""
        return self._send("GET", "/health", callback, json_answer=True, timeout_ms=5_000)

    def models(self, callback: Callable[[Result], None]) -> Call:
        """``GET /models`` -> list of model descriptions (re-scanned by the server)."""
        return self._send("GET", "/models", callback, json_answer=True)

    def colorize(
        self,
        frame: bytes,
        layout: FrameLayout,
        options: ColorizeOptions,
        callback: Callable[[Result], None],
        hints: bytes | None = None,
    ) -> Call:
        """``POST /colorize``: one frame (and optional RGBA u8 hints) -> the coloured frame."""
        parts = [("frame", frame)]
        if hints is not None:
            parts.append(("hints", hints))
        body, content_type = multipart_body(parts)
        query = {**layout.query(), **options.query()}
        expected = layout.result()

        def check(result: Result) -> None:
            if result.ok:
                problem = check_frame_answer(result, expected)
                if problem:
                    result = Result(False, result.status, result.data, problem, result.headers)
            callback(result)

        return self._send(
            "POST",
            "/colorize",
            check,
            query=query,
            body=body,
            content_type=content_type,
            timeout_ms=self.LONG_TIMEOUT_MS,
        )

    def detect(
        self, frames: list[bytes], layout: FrameLayout, callback: Callable[[Result], None]
    ) -> Call:
        """``POST /detect``: 1-3 frames of one sequence -> ``{"task", "model", "reason",
        "confidence", "colored", "blank"}`` (the task a colorize without model would take)."""
        body, content_type = multipart_body([("frame", f) for f in frames])
        return self._send(
            "POST",
            "/detect",
            callback,
            query=layout.query(),
            body=body,
            content_type=content_type,
            json_answer=True,
            timeout_ms=self.LONG_TIMEOUT_MS,
        )

    def create_job(
        self,
        options: ColorizeOptions,
        layout: FrameLayout,
        frame_count: int,
        callback: Callable[[Result], None],
        keyframes: list[Keyframe] | None = None,
    ) -> Call:
        """``POST /jobs`` -> ``{"id", "state"}`` (with ``keyframes``: a shot colored from
        them; upload each with ``upload_keyframe``)."""
        body = {**options.job_fields(), "frame_count": int(frame_count)}
        if keyframes:
            body["keyframes"] = [k.spec() for k in keyframes]
        body.update(
            width=layout.width,
            height=layout.height,
            channels=layout.channels,
            depth=layout.depth,
            order=layout.order,
        )
        return self._send(
            "POST",
            "/jobs",
            callback,
            body=json.dumps(body).encode(),
            content_type="application/json",
            json_answer=True,
        )

    def upload_frame(
        self, job_id: str, index: int, data: bytes, callback: Callable[[Result], None]
    ) -> Call:
        """``PUT /jobs/{id}/frames/{i}`` (the job starts when every frame is in)."""
        return self._send(
            "PUT",
            f"/jobs/{quote(job_id)}/frames/{index}",
            callback,
            body=data,
            content_type="application/octet-stream",
            timeout_ms=self.LONG_TIMEOUT_MS,
        )

    def upload_keyframe(
        self,
        job_id: str,
        index: int,
        data: bytes,
        callback: Callable[[Result], None],
        structure: bool = False,
    ) -> Call:
        """``PUT /jobs/{id}/keyframes/{k}`` (``structure``: ``.../structure``, the uncolored
        frame it colors)."""
        return self._send(
            "PUT",
            f"/jobs/{quote(job_id)}/keyframes/{index}" + ("/structure" if structure else ""),
            callback,
            body=data,
            content_type="application/octet-stream",
            timeout_ms=self.LONG_TIMEOUT_MS,
        )

    def upload_hints(
        self, job_id: str, index: int, data: bytes, callback: Callable[[Result], None]
    ) -> Call:
        """``PUT /jobs/{id}/hints/{i}`` (before frame i)."""
        return self._send(
            "PUT",
            f"/jobs/{quote(job_id)}/hints/{index}",
            callback,
            body=data,
            content_type="application/octet-stream",
        )

    def job_status(self, job_id: str, callback: Callable[[Result], None]) -> Call:
        """``GET /jobs/{id}`` -> ``{"state", "done", "total", "error"}``."""
        return self._send("GET", f"/jobs/{quote(job_id)}", callback, json_answer=True)

    def job_frame(self, job_id: str, index: int, callback: Callable[[Result], None]) -> Call:
        """``GET /jobs/{id}/frames/{i}``: result frame i."""
        return self._send(
            "GET",
            f"/jobs/{quote(job_id)}/frames/{index}",
            callback,
            timeout_ms=self.LONG_TIMEOUT_MS,
        )

    def cancel_job(self, job_id: str, callback: Callable[[Result], None] | None = None) -> Call:
        """``DELETE /jobs/{id}``: cancel (or forget a finished job)."""
        return self._send(
            "DELETE", f"/jobs/{quote(job_id)}", callback or (lambda r: None), json_answer=False
        )

    def train_info(self, callback: Callable[[Result], None]) -> Call:
        """``GET /train`` -> ``{"available", "error", "bases", "defaults", "jobs"}``."""
        return self._send("GET", "/train", callback, json_answer=True)

    def start_training(
        self,
        frames: list[tuple[str, bytes]],
        options: dict[str, Any],
        callback: Callable[[Result], None],
    ) -> Call:
        """``POST /train``: ``(file name, PNG bytes)`` frames + JSON options -> the status."""
        parts = [FormPart("frames", data, filename, "image/png") for filename, data in frames]
        parts.append(
            FormPart("options", json.dumps(options).encode("utf-8"), None, "application/json")
        )
        body, content_type = form_data_body(parts)
        return self._send(
            "POST",
            "/train",
            callback,
            body=body,
            content_type=content_type,
            json_answer=True,
            timeout_ms=self.LONG_TIMEOUT_MS,
        )

    def train_status(self, job_id: str, callback: Callable[[Result], None]) -> Call:
        """``GET /train/{id}`` -> the fine-tuning's status."""
        return self._send("GET", f"/train/{quote(job_id)}", callback, json_answer=True)

    def cancel_training(
        self, job_id: str, callback: Callable[[Result], None] | None = None
    ) -> Call:
        """``DELETE /train/{id}``: cancel a running fine-tuning (or forget a finished one)."""
        return self._send(
            "DELETE", f"/train/{quote(job_id)}", callback or (lambda r: None), json_answer=True
        )

    # -- plumbing --------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        callback: Callable[[Result], None],
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        json_answer: bool = False,
        timeout_ms: int | None = None,
    ) -> Call:
        text = self.base_url + path
        if query:
            text += "?" + urlencode(query, quote_via=quote)
        request = QNetworkRequest(QtCore.QUrl(text))
        if content_type:
            request.setRawHeader(b"Content-Type", content_type.encode("ascii"))
        if self.token:
            request.setRawHeader(b"Authorization", f"Bearer {self.token}".encode())
        if hasattr(request, "setTransferTimeout"):  # Qt >= 5.15
            request.setTransferTimeout(int(timeout_ms or self.SHORT_TIMEOUT_MS))
        verb = method.encode("ascii")
        payload = QtCore.QByteArray(body) if body is not None else None
        if payload is None:
            reply = self._manager.sendCustomRequest(request, verb)
        else:
            reply = self._manager.sendCustomRequest(request, verb, payload)
        call = Call(reply)
        call.request = (method, path, callback, json_answer)
        self._calls.append(call)
        return call

    def _reply_finished(self, reply) -> None:
        call = next((c for c in self._calls if c.reply is reply), None)
        if call is None:  # not ours (or already handled)
            reply.deleteLater()
            return
        self._calls.remove(call)
        call.done = True
        method, path, callback, json_answer = call.request
        try:
            result = self._result(call, method, path, json_answer)
        finally:
            reply.deleteLater()
        callback(result)

    def _result(self, call: Call, method: str, path: str, json_answer: bool) -> Result:
        reply = call.reply
        if call.aborted:
            return Result(False, 0, b"", "Cancelled", cancelled=True)
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        status = int(status) if status is not None else 0
        data = to_bytes(reply.readAll())
        headers = {
            to_bytes(k).decode("latin-1").lower(): to_bytes(v).decode("latin-1")
            for k, v in reply.rawHeaderPairs()
        }
        if status == 0:
            return Result(False, 0, b"", self._network_error(reply), headers)
        if not 200 <= status < 300:
            return Result(
                False, status, data, self._http_error(status, data, method, path), headers
            )
        result = Result(True, status, data, "", headers)
        if json_answer:
            try:
                result.value = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                result.ok = False
                result.error = (
                    f"The InkHue engine at {self.base_url} sent an answer to {method} {path} "
                    "that is not JSON: is another program using this port?"
                )
        return result

    def _network_error(self, reply) -> str:
        code = reply.error()
        errors = QNetworkReply.NetworkError
        if code == errors.ConnectionRefusedError:
            return not_running_message(self.base_url)
        if code == errors.HostNotFoundError:
            return (
                f"Could not find the host of the InkHue engine address {self.base_url}: "
                "check the server URL in the panel"
            )
        if code in (errors.OperationCanceledError, errors.TimeoutError):
            return (
                f"The InkHue engine at {self.base_url} stopped answering (timed out): "
                "check the engine's log, or try a smaller frame or detail"
            )
        return f"Could not reach the InkHue engine at {self.base_url}: {reply.errorString()}"

    def _http_error(self, status: int, data: bytes, method: str, path: str) -> str:
        try:
            message = json.loads(data.decode("utf-8")).get("error")
        except (UnicodeDecodeError, ValueError, AttributeError):
            message = None
        if isinstance(message, str) and message.strip():
            return message.strip()
        if status == 401:
            return (
                f"The InkHue engine at {self.base_url} wants a token: set the same token "
                "as `inkhue serve --token` in the panel"
            )
        return f"The InkHue engine answered HTTP {status} to {method} {path}"


class AnimationJob(QtCore.QObject):
    """Runs one ``/jobs`` job: create, upload the keyframes, every frame (and hints), poll,
    fetch, forget.

    Signals: ``progress(done, total, text)``, ``finished(list_of_frame_bytes)``,
    ``failed(message)``, ``cancelled()``. Exactly one of the last three is emitted.
    """

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    POLL_MS = 250

    def __init__(
        self,
        client: EngineClient,
        frames: list[bytes | Callable[[], bytes]],
        layout: FrameLayout,
        options: ColorizeOptions,
        hints: list[bytes | None | Callable[[], bytes | None]] | None = None,
        parent=None,
        keyframes: list[Keyframe] | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.frames = frames
        self.layout = layout
        self.options = options
        self.hints = hints
        self.keyframes = list(keyframes or [])
        self.job_id: str | None = None
        self.results: list[bytes] = []
        self._call: Call | None = None
        self._over = False
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._poll)

    @property
    def total(self) -> int:
        return len(self.frames)

    def start(self) -> None:
        self.progress.emit(0, self.total, "Starting the job")
        self._call = self.client.create_job(
            self.options, self.layout, self.total, self._created, self.keyframes
        )

    def cancel(self) -> None:
        """Stop the job (the engine drops it); emits ``cancelled`` once the engine knows."""
        if self._over:
            return
        self._over = True
        self._timer.stop()
        if self._call is not None:
            self._call.abort()
        if self.job_id is None:
            self.cancelled.emit()
            return
        self.client.cancel_job(self.job_id, lambda result: self.cancelled.emit())

    # -- steps -------------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        if self._over:
            return
        self._over = True
        self._timer.stop()
        if self.job_id is not None:
            self.client.cancel_job(self.job_id)
        self.failed.emit(message)

    def _fail_unexpected(self, what: str, exc: Exception) -> None:
        """End the job on an error no check foresaw: the traceback to the log, a line to
        the panel."""
        log.error("%s failed", what, exc_info=exc)
        self._fail(f"{what} failed: {type(exc).__name__}: {exc} (details in the log file)")

    def _ok(self, result: Result) -> bool:
        if self._over:
            return False
        if not result.ok:
            self._fail(result.error)
            return False
        return True

    def _created(self, result: Result) -> None:
        if not self._ok(result):
            return
        job_id = (result.value or {}).get("id") if isinstance(result.value, dict) else None
        if not job_id:
            self._fail("The InkHue engine created a job without an id: update the engine")
            return
        self.job_id = str(job_id)
        self._upload_keyframe(0, False)

    def _upload_keyframe(self, index: int, structure: bool) -> None:
        """Keyframe ``index`` (then its structure, if it has one), then the next."""
        if index >= len(self.keyframes):
            self._upload(0)
            return
        key = self.keyframes[index]
        if structure and key.structure is None:
            self._upload_keyframe(index + 1, False)
            return
        what = f"{key.name or f'keyframe {index + 1}'}" + (" (its frame)" if structure else "")
        self.progress.emit(0, self.total, f"Reading and sending {what}")
        if self._over:
            return
        try:  # read only now, one per upload (as frames are)
            data = key.structure if structure else key.read
            data = data() if callable(data) else data
        except PluginError as exc:
            self._fail(str(exc))
            return
        except Exception as exc:  # in a reply's slot: escaping, it would leave the job hanging
            self._fail_unexpected(f"Reading {what}", exc)
            return

        def sent(result: Result) -> None:
            if not self._ok(result):
                return
            if structure:
                self._upload_keyframe(index + 1, False)
            else:
                self._upload_keyframe(index, True)

        self._call = self.client.upload_keyframe(self.job_id, index, data, sent, structure)

    def _upload(self, index: int) -> None:
        if index >= self.total:
            self.progress.emit(0, self.total, "Colorizing")
            self._timer.start(self.POLL_MS)
            return
        self.progress.emit(index, self.total, f"Reading and sending frame {index + 1}/{self.total}")
        if self._over:  # cancelled meanwhile (e.g. from a progress handler)
            return
        try:  # frames (and hints) may be read only now, one per upload
            frame = self.frames[index]
            frame = frame() if callable(frame) else frame
            hint = self.hints[index] if self.hints else None
            hint = hint() if callable(hint) else hint
        except PluginError as exc:
            self._fail(str(exc))
            return
        except Exception as exc:  # in a reply's slot: escaping, it would leave the job hanging
            self._fail_unexpected(f"Reading frame {index + 1}/{self.total}", exc)
            return

        def frame_done(result: Result) -> None:
            if self._ok(result):
                self._upload(index + 1)

        def send_frame(result: Result | None = None) -> None:
            if result is not None and not self._ok(result):
                return
            self._call = self.client.upload_frame(self.job_id, index, frame, frame_done)

        if hint is not None:
            self._call = self.client.upload_hints(self.job_id, index, hint, send_frame)
        else:
            send_frame()

    def _poll(self) -> None:
        if not self._over:
            self._call = self.client.job_status(self.job_id, self._polled)

    def _polled(self, result: Result) -> None:
        if not self._ok(result):
            return
        info = result.value if isinstance(result.value, dict) else {}
        state = info.get("state")
        done, total = int(info.get("done") or 0), int(info.get("total") or self.total)
        if state == "failed":
            self._fail(info.get("error") or "The InkHue engine's job failed")
        elif state == "cancelled":
            self._over = True
            self.cancelled.emit()
        elif state == "done":
            self.progress.emit(total, total, "Fetching results")
            self._fetch(0)
        else:
            self.progress.emit(done, total, f"Colorizing {done}/{total}")
            self._timer.start(self.POLL_MS)

    def _fetch(self, index: int) -> None:
        if index >= self.total:
            self._over = True
            self.client.cancel_job(self.job_id)  # forget: the results are with us now
            # handed over, not kept: a finished job object (its parent keeps it) would
            # otherwise hold a chunk of results for as long as the panel lives
            results, self.results = self.results, []
            self.finished.emit(results)
            return
        expected = self.layout.result()

        def got(result: Result) -> None:
            if not self._ok(result):
                return
            problem = check_frame_answer(result, expected)
            if problem:
                self._fail(problem)
                return
            self.results.append(result.data)
            self._fetch(index + 1)

        self._call = self.client.job_frame(self.job_id, index, got)


#: What the panel says during each phase of a fine-tuning (GET /train/{id} ``phase``).
TRAIN_PHASES = {
    "starting": "Starting the fine-tuning",
    "training": "Training",
    "export": "Exporting the model",
    "check": "Checking on held-out frames",
    "finished": "Finishing",
}


def training_text(status: dict[str, Any]) -> str:
    """One progress line for a fine-tuning status (phase, step / total)."""
    phase = str(status.get("phase") or "starting")
    if status.get("state") == "cancelled":
        return "Stopping the fine-tuning..."
    text = TRAIN_PHASES.get(phase, phase)
    if phase == "training":
        text += f" step {int(status.get('step') or 0)}/{int(status.get('total') or 0)}"
    return text


class TrainingJob(QtCore.QObject):
    """One fine-tuning on the engine: upload (``POST /train``), poll, cancel (``DELETE``).

    Signals: ``progress(step, total, text)`` (total 0 = busy indicator),
    ``finished(status)`` (the ``done`` status: model, palette, held_out_check...),
    ``failed(message)``, ``cancelled()``. Exactly one of the last three is emitted.
    ``attach(job_id)`` follows a job that is already running (e.g. after a restart).
    """

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    POLL_MS = 1000  # docs/HTTP_API.md: poll every second or so

    def __init__(self, client: EngineClient, name: str = "", parent=None) -> None:
        super().__init__(parent)
        self.client = client
        self.name = name
        self.job_id: str | None = None
        self.status: dict[str, Any] = {}
        self._call: Call | None = None
        self._over = False
        self._cancelling = False
        self._sent_all = False
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._poll)

    def start(self, frames: list[tuple[str, bytes]], options: dict[str, Any]) -> None:
        """Upload ``frames`` (file name, PNG bytes) with ``options``; the engine starts."""
        size = sum(len(data) for _name, data in frames)
        amount = f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{max(1, round(size / 1e3))} kB"
        self.progress.emit(0, 0, f"Uploading {len(frames)} frames ({amount})")
        self._call = self.client.start_training(frames, options, self._started)
        self._call.reply.uploadProgress.connect(self._uploaded)

    def _uploaded(self, sent: int, total: int) -> None:
        # Every frame is on the engine: it may start the job before it answers.
        self._sent_all = total > 0 and sent >= total

    def attach(self, job_id: str) -> None:
        """Follow the running fine-tuning ``job_id``."""
        self.job_id = job_id
        self._poll()

    def cancel(self) -> None:
        """Stop the fine-tuning; ``cancelled`` comes once the engine has stopped it."""
        if self._over or self._cancelling:
            return
        self._cancelling = True
        if self.job_id is None and self._sent_all and not self._call.done:
            # The engine has the whole upload and is starting the job (saving and checking
            # the frames first): an abort would not stop it. Its answer brings the id to
            # cancel (_started).
            self.progress.emit(0, 0, "Stopping the fine-tuning...")
            return
        if self.job_id is None:  # still uploading (or its answer is on the way)
            self._over = True
            if self._call is not None:
                self._call.abort()
            client, name = self.client, self.name

            def forget(result: Result) -> None:
                # The upload may have been complete: stop a fine-tuning it started.
                info = result.value if result.ok and isinstance(result.value, dict) else {}
                for status in info.get("jobs") or []:
                    if (
                        isinstance(status, dict)
                        and status.get("state") == "running"
                        and status.get("name") == name
                        and status.get("id")
                    ):
                        client.cancel_training(str(status["id"]))

            client.train_info(forget)
            self.cancelled.emit()
            return
        self._timer.stop()
        if self._call is not None:
            self._call.abort()
        self.progress.emit(0, 0, "Stopping the fine-tuning...")
        self._call = self.client.cancel_training(self.job_id, self._polled)

    def _fail(self, message: str) -> None:
        if not self._over:
            self._over = True
            self._timer.stop()
            self.failed.emit(message)

    def _started(self, result: Result) -> None:
        if self._over:
            return
        if self._cancelling:  # cancelled after the whole upload was sent
            info = result.value if result.ok and isinstance(result.value, dict) else {}
            if not info.get("id"):
                self._over = True
                self.cancelled.emit()
                return
            self.job_id = str(info["id"])
            self._call = self.client.cancel_training(self.job_id, self._polled)
            return
        if not result.ok:
            self._fail(result.error)
            return
        info = result.value if isinstance(result.value, dict) else {}
        if not info.get("id"):
            self._fail("The InkHue engine started a fine-tuning without an id: update it")
            return
        self.job_id = str(info["id"])
        self._polled(result)

    def _poll(self) -> None:
        if not self._over and self.job_id is not None:
            self._call = self.client.train_status(self.job_id, self._polled)

    def _polled(self, result: Result) -> None:
        if self._over or result.cancelled:
            return
        if not result.ok:
            if self._cancelling and result.status == 404:  # gone: nothing runs any more
                self._over = True
                self.cancelled.emit()
                return
            self._fail(result.error)
            return
        status = result.value if isinstance(result.value, dict) else {}
        self.status = status
        state, phase = status.get("state"), status.get("phase")
        if state == "done":
            self._over = True
            total = int(status.get("total") or 0)
            self.progress.emit(total, total, "Done")
            self.finished.emit(status)
        elif state == "failed":
            self._fail(
                status.get("error")
                or "The fine-tuning failed (no reason given): see the engine's log"
            )
        elif state == "cancelled" and phase == "finished":
            self._over = True
            self.cancelled.emit()
        else:
            step, total = int(status.get("step") or 0), int(status.get("total") or 0)
            if state == "cancelled" or phase == "starting":
                step = total = 0  # a busy indicator
            elif phase != "training":
                step = total  # export, check: the steps are all done
            self.progress.emit(step, total, training_text(status))
            self._timer.start(self.POLL_MS)
