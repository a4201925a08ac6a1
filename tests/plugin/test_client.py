"""EngineClient and its helpers against the fake engine (no widgets)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fake_engine import fake_colorize

from inkhue.client import (
    ColorizeOptions,
    EngineClient,
    Result,
    check_frame_answer,
    multipart_body,
)
from inkhue.pixels import FrameLayout

TIMEOUT = 5000


def call(qtbot, method, *args, **kwargs) -> Result:
    """Run one asynchronous client call and return its Result."""
    box: list[Result] = []
    method(*args, box.append, **kwargs)
    qtbot.waitUntil(lambda: bool(box), timeout=TIMEOUT)
    return box[0]


def test_options_as_query_and_job_fields():
    opts = ColorizeOptions(
        model="my model",
        task="lineart",
        detail=2,
        regions=False,
        mirror=False,
        output="fill",
        palette=["#FF0000", "#00ff00"],
    )
    q = opts.query()
    assert q == {
        "model": "my model",
        "task": "lineart",
        "detail": "2.0",
        "regions": "false",
        "mirror": "false",
        "output": "fill",
        "palette": '["#FF0000", "#00ff00"]',
    }
    assert opts.job_fields() == {
        "model": "my model",
        "task": "lineart",
        "detail": 2.0,
        "regions": False,
        "mirror": False,
        "output": "fill",
        "palette": ["#FF0000", "#00ff00"],
    }
    assert ColorizeOptions(palette="none").query()["palette"] == "none"
    assert "palette" not in ColorizeOptions().query()
    assert ColorizeOptions().query()["mirror"] == "true"  # the engine's default, said aloud


def test_multipart_body_parses_with_the_stdlib():
    from email import policy
    from email.parser import BytesParser

    frame, hints = bytes(range(256)) * 3, b"\r\n--x\r\n"
    body, ctype = multipart_body([("frame", frame), ("hints", hints)])
    msg = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    parts = {
        p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
        for p in msg.iter_parts()
    }
    assert parts == {"frame": frame, "hints": hints}


def test_health_models_and_url_normalization(qtbot, fake_engine):
    client = EngineClient(fake_engine.url.replace("http://", "") + "/")
    assert client.base_url == fake_engine.url
    health = call(qtbot, client.health)
    assert health.ok and health.value["version"] == "9.9.9"
    models = call(qtbot, client.models)
    assert [m["name"] for m in models.value] == ["toon-gray", "toon-lines"]


def test_colorize_gray_alpha_query_is_encoded(qtbot, fake_engine):
    client = EngineClient(fake_engine.url)
    layout = FrameLayout(3, 2, 2, "u8", "bgra")
    frame = bytes([10, 255, 20, 128, 30, 0, 40, 255, 50, 255, 60, 7])
    opts = ColorizeOptions(model="toon gray+1", palette=["#a&b", "#ff0000"])
    result = call(qtbot, client.colorize, frame, layout, opts)
    assert result.ok, result.error
    query = fake_engine.colorize_calls[-1]["query"]
    assert query["model"] == "toon gray+1"  # space and plus survive the query string
    assert json.loads(query["palette"]) == ["#a&b", "#ff0000"]
    assert result.data == fake_colorize(frame, 2, "bgra", None)
    assert result.headers["x-inkhue-channels"] == "4"


def test_answer_of_the_wrong_shape_is_refused():
    expected = FrameLayout(2, 2, 4, "u8", "bgra")
    good = Result(
        True,
        200,
        bytes(16),
        headers={
            "x-inkhue-width": "2",
            "x-inkhue-height": "2",
            "x-inkhue-channels": "4",
            "x-inkhue-depth": "u8",
            "x-inkhue-order": "bgra",
        },
    )
    assert check_frame_answer(good, expected) == ""
    wrong = Result(True, 200, bytes(16), headers=dict(good.headers, **{"x-inkhue-order": "rgba"}))
    assert "update the engine and the plugin" in check_frame_answer(wrong, expected)
    short = Result(True, 200, bytes(15))
    assert "15 bytes where 16" in check_frame_answer(short, expected)


@pytest.fixture
def not_json_server():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            body = b"<html>hello</html>" if self.path == "/health" else b"oops"
            self.send_response(200 if self.path == "/health" else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_answers_that_are_not_the_engine(qtbot, not_json_server):
    client = EngineClient(not_json_server)
    health = call(qtbot, client.health)
    assert not health.ok and "is another program using this port?" in health.error
    models = call(qtbot, client.models)
    assert models.error == "The InkHue engine answered HTTP 500 to GET /models"


def test_abort_gives_a_cancelled_result(qtbot, fake_engine):
    fake_engine.hold = threading.Event()  # the engine answers only when the test says so
    client = EngineClient(fake_engine.url)
    box: list[Result] = []
    handle = client.colorize(b"\0" * 16, FrameLayout(2, 2, 4, "u8"), ColorizeOptions(), box.append)
    try:
        qtbot.waitUntil(lambda: bool(fake_engine.colorize_calls), timeout=TIMEOUT)
        handle.abort()
        qtbot.waitUntil(lambda: bool(box), timeout=TIMEOUT)
        # the result came while the engine still held the request: abort did not wait
        assert not fake_engine.hold.is_set()
        assert box[0].cancelled and not box[0].ok
        assert client.pending() == 0
    finally:
        fake_engine.hold.set()
