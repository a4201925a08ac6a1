"""A tiny stand-in for ``inkhue serve`` that follows docs/HTTP_API.md (stdlib only).

It "colorizes" u8 frames with a rule the tests can compute on their own: every colour
channel c becomes 255 - c (gray is first spread to three channels), alpha is kept; a hint
pixel with alpha > 0 wins over that. It records every request so tests can check what
the plugin sent. Run it as a script (``python fake_engine.py --port N``) for the tests of
"Start engine".

Fine-tuning (``/train``): the same checks and messages as engine/server.py before anything
starts (options, file parts, PNG/TIFF/JPEG/WebP magic, at least ``min_frames`` frames, each
frame's short side >= the crop, read from the PNG header; name taken; one job at a time),
then a job that moves on at each poll: ``starting`` -> ``training`` (``train_step_per_poll``
steps a poll) -> ``export`` -> ``check`` -> ``done``, when the model (with
``train_palette``) joins ``models``. It does not train anything, and does not check colour.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import struct
import threading
import time
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MODELS = [
    {
        "name": "toon-gray",
        "task": "grayscale",
        "file": "toon-gray.onnx",
        "train_size": 64,
        "multiple_of": 8,
        "trained_on": "tests",
        "palette": None,
        "builtin": True,
    },
    {
        "name": "toon-lines",
        "task": "lineart",
        "file": "toon-lines.onnx",
        "train_size": 64,
        "multiple_of": 8,
        "trained_on": "tests",
        "palette": ["#ff0000", "#00ff00"],
        "builtin": False,
    },
]


def fake_colorize(frame: bytes, channels: int, order: str, hints: bytes | None) -> bytes:
    """The fake engine's rule (see module docstring), u8 only, same order in and out."""
    out = bytearray()
    n = len(frame) // channels
    for i in range(n):
        px = frame[i * channels : (i + 1) * channels]
        if channels in (1, 2):
            color, alpha = [px[0]] * 3, (px[1] if channels == 2 else None)
        else:
            color, alpha = list(px[:3]), (px[3] if channels == 4 else None)
        color = [255 - c for c in color]
        if hints is not None and hints[i * 4 + 3] > 0:
            color = list(hints[i * 4 : i * 4 + 3])  # hints come in `order`, as the answer
        out += bytes(color)
        if alpha is not None:
            out.append(alpha)
    return bytes(out)


TRAIN_DEFAULTS = {"steps": 300, "lr": 1e-4, "batch_size": 8, "palette_colors": 16, "min_frames": 4}
TRAIN_OPTIONS = {
    "name",
    "base",
    "steps",
    "lr",
    "crop_size",
    "batch_size",
    "palette_colors",
    "palette",
    "hold_out",
    "overwrite",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"\xff\xd8\xff")


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, None for other files."""
    if not data.startswith(_MAGIC[0]) or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


class FakeEngine:
    """State of the fake server; ``url`` once started."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self.models = [dict(m) for m in MODELS]
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.colorize_calls: list[dict] = []
        #: POST /detect answers this task (its first listed model); each call's frame count
        self.detect_task = "grayscale"
        self.detect_colored = False
        self.detect_calls: list[int] = []
        self.fail: tuple[int, str] | None = None  # answer every /colorize or /jobs with it
        self.hold: threading.Event | None = None  # /colorize, /detect answer once it is set
        self.stall_jobs = False  # jobs never progress (for Cancel)
        self.jobs: dict[str, dict] = {}
        self.deleted: list[str] = []
        # fine-tuning
        self.has_train = True  # False: an engine older than /train (404)
        self.train_available = True
        self.train_error: str | None = None
        self.train_bases = [
            {"name": "grayscale", "installed": True, "task": "grayscale", "train_size": 16},
            {"name": "lineart", "installed": False, "task": None, "train_size": None},
        ]
        self.train_defaults = dict(TRAIN_DEFAULTS)
        self.train_posts: list[dict] = []  # what POST /train received (accepted or not)
        self.train_jobs: dict[str, dict] = {}
        self.train_deleted: list[str] = []
        self.train_fail: tuple[int, str] | None = None  # answer POST /train with it
        self.train_fail_at: int | None = None  # a job fails once it reaches this step
        self.train_stall = False  # jobs stay at step 1 (for Cancel)
        self.train_step_per_poll = 2
        self.train_answer_delay_s = 0.0  # sleep between starting a job and answering POST
        self.train_palette = ["#e65037", "#468cdc", "#fad25a"]
        self.train_check: dict | None = {
            "base": 21.5,
            "base+palette": 19.0,
            "finetuned": 8.25,
            "finetuned+palette": 7.5,
        }
        self._lock = threading.Lock()
        self.connections: list = []  # open client sockets (kill() cuts them)
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
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def kill(self) -> None:
        """Stop like a killed process: the kept-alive connections are cut too."""
        self.stop()
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    state: FakeEngine
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    def setup(self):
        super().setup()
        self.state.connections.append(self.connection)

    # -- helpers ---------------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None
    ) -> None:
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
        self._json(
            200,
            {
                "status": "ok",
                "version": "9.9.9",
                "provider": "FakeProvider",
                "models": [m["name"] for m in self.state.models],
            },
        )

    def _get_models(self, rest, query, body):
        self._json(200, self.state.models)

    def _frame_answer(self, frame: bytes, layout: dict, hints: bytes | None) -> None:
        channels = int(layout["channels"])
        out = fake_colorize(frame, channels, layout["order"], hints)
        out_channels = 4 if channels in (2, 4) else 3
        self._send(
            200,
            out,
            "application/octet-stream",
            {
                "X-InkHue-Width": layout["width"],
                "X-InkHue-Height": layout["height"],
                "X-InkHue-Channels": str(out_channels),
                "X-InkHue-Depth": layout["depth"],
                "X-InkHue-Order": layout["order"],
                "X-InkHue-Model": layout.get("model") or "",
            },
        )

    def _multipart(self, body: bytes) -> list:
        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=policy.default).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        return list(msg.iter_parts())

    def _post_colorize(self, rest, query, body):
        st = self.state
        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=policy.default).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        parts = {
            p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
            for p in msg.iter_parts()
        }
        st.colorize_calls.append({"query": query, "parts": parts, "content_type": ctype})
        if st.hold is not None:
            st.hold.wait(60)
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

    def _post_detect(self, rest, query, body):
        st = self.state
        frames = [
            p.get_payload(decode=True)
            for p in self._multipart(body)
            if p.get_param("name", header="content-disposition") == "frame"
        ]
        st.detect_calls.append(len(frames))
        if st.hold is not None:
            st.hold.wait(60)
        if st.fail:
            self._error(*st.fail)
            return
        expected = int(query["width"]) * int(query["height"]) * int(query["channels"])
        if not frames or any(len(f) != expected for f in frames):
            self._error(400, f"frame: expected 1-3 frames of {expected} bytes")
            return
        task = st.detect_task
        model = next((m["name"] for m in st.models if m["task"] == task), None)
        reason = f"{task} (fake)"
        self._json(
            200,
            {
                "task": task,
                "confidence": 1.0,
                "colored": st.detect_colored,
                "blank": False,
                "reason": reason,
                "model": model,
            },
        )

    def _post_jobs(self, rest, query, body):
        st = self.state
        if st.fail:
            self._error(*st.fail)
            return
        spec = json.loads(body)
        with st._lock:
            job_id = f"job{len(st.jobs) + 1}"
            st.jobs[job_id] = {
                "spec": spec,
                "frames": {},
                "hints": {},
                "done": 0,
                "state": "uploading",
                "polls": 0,
            }
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
            self._json(
                200,
                {
                    "id": rest[0],
                    "state": job["state"],
                    "done": job["done"],
                    "total": total,
                    "error": None,
                },
            )
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

    # -- fine-tuning -------------------------------------------------------------------------
    def _get_train(self, rest, query, body):
        st = self.state
        if not st.has_train:
            self._error(404, "Not Found")
            return
        if rest:
            job = st.train_jobs.get(rest[0])
            if job is None:
                self._error(
                    404, f"training job {rest[0]!r} not found (unknown, deleted or expired)"
                )
                return
            self._advance(job)
            self._json(200, job)
            return
        self._json(
            200,
            {
                "available": st.train_available,
                "error": st.train_error,
                "bases": st.train_bases if st.train_available else [],
                "defaults": st.train_defaults if st.train_available else {},
                "jobs": list(st.train_jobs.values()),
            },
        )

    def _advance(self, job: dict) -> None:
        """One poll's worth of progress of a running fake fine-tuning."""
        st = self.state
        if job["state"] != "running":
            return
        if job["phase"] == "starting":
            job["phase"], job["palette"] = "training", list(st.train_palette)
        elif job["phase"] == "training":
            if st.train_stall:
                job["step"] = 1
            else:
                job["step"] = min(job["total"], job["step"] + st.train_step_per_poll)
            job["losses"] = {"loss_d": 1.0, "loss_g": 2.0, "l1": 0.1, "adv": 0.5, "img_s": 9.0}
            if st.train_fail_at is not None and job["step"] >= st.train_fail_at:
                job.update(
                    state="failed", phase="finished", error="out of memory: lower batch_size"
                )
            elif job["step"] == job["total"]:
                job["phase"] = "export"
        elif job["phase"] == "export":
            job["phase"] = "check"
        elif job["phase"] == "check":
            job.update(
                state="done",
                phase="finished",
                model=job["name"],
                held_out_check=st.train_check,
                seconds=42.0,
            )
            st.models.append(
                {
                    "name": job["name"],
                    "task": "grayscale",
                    "file": f"/user/models/{job['name']}.onnx",
                    "train_size": 16,
                    "multiple_of": 8,
                    "trained_on": "fine-tuned",
                    "palette": list(st.train_palette),
                    "builtin": False,
                }
            )

    def _post_train(self, rest, query, body):
        st = self.state
        parts = self._multipart(body)
        frames = [
            (p.get_filename(), p.get_payload(decode=True))
            for p in parts
            if p.get_param("name", header="content-disposition") == "frames"
        ]
        options_part = [
            p for p in parts if p.get_param("name", header="content-disposition") == "options"
        ]
        raw = options_part[0].get_payload(decode=True) if options_part else None
        post = {
            "content_type": self.headers.get("Content-Type", ""),
            "frames": frames,
            "options_raw": raw,
            "options": None,
        }
        st.train_posts.append(post)
        if not st.has_train:
            self._error(404, "Not Found")
            return
        if not st.train_available:
            self._error(501, st.train_error or "fine-tuning is not available")
            return
        if st.train_fail:
            self._error(*st.train_fail)
            return
        if raw is None:
            self._error(
                400,
                "multipart part 'options' is missing: send the training options "
                'as JSON, e.g. {"name": "studio", "base": "grayscale"}',
            )
            return
        options = json.loads(raw)
        post["options"] = options
        unknown = sorted(set(options) - TRAIN_OPTIONS)
        if unknown:
            self._error(400, f"options field {unknown[0]!r}: Extra inputs are not permitted")
            return
        if not frames:
            self._error(
                400,
                "multipart part 'frames' is missing: upload the colored frames "
                "as file parts named 'frames'",
            )
            return
        for i, (filename, data) in enumerate(frames):
            if filename is None:
                self._error(
                    400,
                    f"frames part {i} came as a text field: send each frame as "
                    "a file part (with a filename in its Content-Disposition)",
                )
                return
            if not data.startswith(_MAGIC) and data[8:12] != b"WEBP":
                self._error(
                    400,
                    f"frames part {i} ({filename}): not a PNG, TIFF, JPEG or "
                    "WebP file: send each frame as an encoded image file",
                )
                return
        name = str(options.get("name", "")).strip()
        if not _NAME_RE.match(name):
            self._error(
                400,
                f"model name {name!r}: use 1-64 letters, digits, spaces, '.', "
                "'_' or '-', starting with a letter or digit",
            )
            return
        busy = [j for j in st.train_jobs.values() if j["state"] == "running"]
        if busy:
            self._error(
                409,
                f"a fine-tuning is already running (job {busy[0]['id']}, model "
                f"{busy[0]['name']!r}): wait for it, or cancel it with DELETE "
                f"/train/{busy[0]['id']}",
            )
            return
        base = options.get("base", "grayscale")
        info = next((b for b in st.train_bases if b["name"] == base), None)
        if info is None or not info["installed"]:
            self._error(501, f"base {base!r}: the shipped checkpoint is not installed")
            return
        crop = options.get("crop_size") or info.get("train_size") or 128
        minimum = st.train_defaults["min_frames"]
        if len(frames) < minimum:
            self._error(
                400,
                f"uploaded frames: {len(frames)} frame(s); fine-tuning needs at "
                f"least {minimum} colored frames of the production (a few "
                "dozen work best)",
            )
            return
        for i, (filename, data) in enumerate(frames):
            size = png_size(data)
            if size is not None and min(size) < crop:
                self._error(
                    400,
                    f"uploaded frames: frame {i:04d}_{filename} is "
                    f"{size[0]}x{size[1]} px, smaller than the {crop}-px "
                    f"training crop: use frames of at least {crop} px on the "
                    "short side, or a smaller crop size",
                )
                return
        if any(m["name"] == name and not m.get("builtin") for m in st.models):
            self._error(
                409,
                f"name: a model {name!r} exists in the user models folder: "
                "choose another name, or send overwrite: true",
            )
            return
        with st._lock:
            job_id = f"train{len(st.train_jobs) + 1}"
            job = {
                "id": job_id,
                "name": name,
                "state": "running",
                "phase": "starting",
                "step": 0,
                "total": int(options.get("steps") or TRAIN_DEFAULTS["steps"]),
                "losses": None,
                "error": None,
                "model": None,
                "palette": None,
                "held_out_check": None,
                "seconds": 0.0,
            }
            st.train_jobs[job_id] = job
        if st.train_answer_delay_s:
            time.sleep(st.train_answer_delay_s)
        self._json(200, job)

    def _delete_train(self, rest, query, body):
        st = self.state
        job = st.train_jobs.get(rest[0]) if rest else None
        if job is None:
            self._error(404, f"training job {rest[0] if rest else '?'!r} not found")
            return
        st.train_deleted.append(job["id"])
        if job["state"] == "running":
            job.update(state="cancelled", phase="finished")  # the fake "subprocess" ends now
            self._json(200, {**job, "forgotten": False})
        else:
            del st.train_jobs[job["id"]]
            self._json(200, {**job, "forgotten": True})


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
