"""A tiny stand-in for ``inkhue serve`` that follows docs/HTTP_API.md (stdlib only).

It "colorizes" u8 frames with a rule the tests can compute on their own: every colour
channel c becomes 255 - c (gray is first spread to three channels), alpha is kept; a hint
pixel with alpha > 0 wins over that. It records every request so tests can check what
the plugin sent. Run it as a script (``python fake_engine.py --port N``) for the tests of
"Start engine".
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MODELS = [
    {"name": "toon-gray", "task": "grayscale", "file": "toon-gray.onnx", "train_size": 64,
     "multiple_of": 8, "trained_on": "tests", "palette": None, "builtin": True},
    {"name": "toon-lines", "task": "lineart", "file": "toon-lines.onnx", "train_size": 64,
     "multiple_of": 8, "trained_on": "tests", "palette": ["#ff0000", "#00ff00"],
     "builtin": False},
]


def fake_colorize(frame: bytes, channels: int, order: str, hints: bytes | None) -> bytes:
    """The fake engine's rule (see module docstring), u8 only, same order in and out."""
    out = bytearray()
    n = len(frame) // channels
    for i in range(n):
        px = frame[i * channels:(i + 1) * channels]
        if channels in (1, 2):
            color, alpha = [px[0]] * 3, (px[1] if channels == 2 else None)
        else:
            color, alpha = list(px[:3]), (px[3] if channels == 4 else None)
        color = [255 - c for c in color]
        if hints is not None and hints[i * 4 + 3] > 0:
            color = list(hints[i * 4:i * 4 + 3])  # hints come in `order`, as the answer
        out += bytes(color)
        if alpha is not None:
            out.append(alpha)
    return bytes(out)


class FakeEngine:
    """State of the fake server; ``url`` once started."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self.models = [dict(m) for m in MODELS]
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.colorize_calls: list[dict] = []
        self.fail: tuple[int, str] | None = None  # answer every /colorize or /jobs with it
        self.delay_s = 0.0  # sleep before answering /colorize
        self.stall_jobs = False  # jobs never progress (for Cancel)
        self.jobs: dict[str, dict] = {}
        self.deleted: list[str] = []
        self._lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> FakeEngine:
        engine = self

        class Handler(_Handler):
            state = engine

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    state: FakeEngine
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    # -- helpers ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str = "application/json",
              headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._send(status, json.dumps(value).encode())

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = self._body()
        st = self.state
        st.requests.append((method, parts.path, query))
        if st.token and self.headers.get("Authorization") != f"Bearer {st.token}":
            self._error(401, "missing or wrong token: pass Authorization: Bearer <token>")
            return
        path = parts.path.rstrip("/").split("/")[1:]
        try:
            handler = getattr(self, f"_{method.lower()}_{path[0]}", None) if path else None
            if handler is None:
                self._error(404, f"no route {method} {parts.path}")
                return
            handler(path[1:], query, body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):  # noqa: N802
        self._route("GET")

    def do_POST(self):  # noqa: N802
        self._route("POST")

    def do_PUT(self):  # noqa: N802
        self._route("PUT")

    def do_DELETE(self):  # noqa: N802
        self._route("DELETE")

    # -- endpoints -------------------------------------------------------------------------
    def _get_health(self, rest, query, body):
        self._json(200, {"status": "ok", "version": "9.9.9", "provider": "FakeProvider",
                         "models": [m["name"] for m in self.state.models]})

    def _get_models(self, rest, query, body):
        self._json(200, self.state.models)

    def _frame_answer(self, frame: bytes, layout: dict, hints: bytes | None) -> None:
        channels = int(layout["channels"])
        out = fake_colorize(frame, channels, layout["order"], hints)
        out_channels = 4 if channels in (2, 4) else 3
        self._send(200, out, "application/octet-stream", {
            "X-InkHue-Width": layout["width"], "X-InkHue-Height": layout["height"],
            "X-InkHue-Channels": str(out_channels), "X-InkHue-Depth": layout["depth"],
            "X-InkHue-Order": layout["order"], "X-InkHue-Model": layout.get("model") or "",
        })

    def _post_colorize(self, rest, query, body):
        st = self.state
        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=policy.default).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                 for p in msg.iter_parts()}
        st.colorize_calls.append({"query": query, "parts": parts,
                                  "content_type": ctype})
        if st.delay_s:
            time.sleep(st.delay_s)
        if st.fail:
            self._error(*st.fail)
            return
        frame = parts.get("frame")
        if frame is None:
            self._error(400, "frame: the multipart part 'frame' is missing")
            return
        if query.get("depth") != "u8":
            self._error(400, "depth: the fake engine only does u8")
            return
        expected = int(query["width"]) * int(query["height"]) * int(query["channels"])
        if len(frame) != expected:
            self._error(400, f"frame: {len(frame)} bytes, expected {expected}")
            return
        self._frame_answer(frame, query, parts.get("hints"))

    def _post_jobs(self, rest, query, body):
        st = self.state
        if st.fail:
            self._error(*st.fail)
            return
        spec = json.loads(body)
        with st._lock:
            job_id = f"job{len(st.jobs) + 1}"
            st.jobs[job_id] = {"spec": spec, "frames": {}, "hints": {}, "done": 0,
                               "state": "uploading", "polls": 0}
        self._json(200, {"id": job_id, "state": "uploading"})

    def _job(self, rest):
        job = self.state.jobs.get(rest[0]) if rest else None
        if job is None:
            self._error(404, f"job {rest[0] if rest else '?'} not found")
        return job

    def _put_jobs(self, rest, query, body):
        job = self._job(rest)
        if job is None:
            return
        kind, index = rest[1], int(rest[2])
        job[kind][index] = body
        if len(job["frames"]) == job["spec"]["frame_count"]:
            job["state"] = "running"
        self._json(200, {"id": rest[0], "state": job["state"]})

    def _get_jobs(self, rest, query, body):
        job = self._job(rest)
        if job is None:
            return
        total = job["spec"]["frame_count"]
        if len(rest) == 1:
            if job["state"] == "running" and not self.state.stall_jobs:
                job["done"] = min(total, job["done"] + 1)  # one frame per poll
                if job["done"] == total:
                    job["state"] = "done"
            self._json(200, {"id": rest[0], "state": job["state"], "done": job["done"],
                             "total": total, "error": None})
            return
        index = int(rest[2])
        if job["state"] != "done":
            self._error(404, f"frame {index} of job {rest[0]} is not done yet")
            return
        spec = {k: str(v) for k, v in job["spec"].items()}
        self._frame_answer(job["frames"][index], spec, job["hints"].get(index))

    def _delete_jobs(self, rest, query, body):
        job = self._job(rest)
        if job is None:
            return
        if job["state"] != "done":
            job["state"] = "cancelled"
        self.state.deleted.append(rest[0])
        self._json(200, {"id": rest[0], "state": job["state"]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before listening")
    args = parser.parse_args()
    print("fake engine starting", flush=True)
    time.sleep(args.delay)
    engine = FakeEngine().start(args.port)
    print(f"fake engine listening on {engine.url}", flush=True)
    engine.thread.join()


if __name__ == "__main__":
    main()
