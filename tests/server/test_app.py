"""The HTTP API against tiny real models: results equal the pipeline called directly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from inkhue_engine import __version__
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions, colorize_frame

H, W = 24, 40


def _frame(channels: int, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A cartoon-ish frame: flat regions with dark outlines, random alpha."""
    rng = np.random.default_rng(seed)
    gray = np.full((H, W), 0.9, np.float32)
    gray[4:14, 5:20] = 0.5
    gray[10:20, 22:36] = 0.7
    gray[4, 5:20] = gray[14, 5:20] = gray[4:14, 5] = gray[4:14, 19] = 0.05
    rgb = np.stack([gray, gray * 0.95, gray * 0.9], -1)
    alpha = rng.uniform(0.2, 1.0, (H, W, 1)).astype(np.float32)
    planes = {
        1: gray[..., None],
        2: np.concatenate([gray[..., None], alpha], -1),
        3: rgb,
        4: np.concatenate([rgb, alpha], -1),
    }[channels]
    if dtype == np.uint8:
        out = np.rint(planes * 255).astype(np.uint8)
    elif dtype == np.uint16:
        out = np.rint(planes * 65535).astype(np.uint16)
    else:
        out = planes.astype(dtype)
    return out[..., 0] if channels == 1 else out


def _hints() -> np.ndarray:
    hints = np.zeros((H, W, 4), np.uint8)
    hints[8:11, 9:12] = (255, 0, 0, 255)  # red inside the first box
    return hints


WIRE = {"u8": "<u1", "u16": "<u2", "f16": "<f2", "f32": "<f4"}


def _wire(img: np.ndarray, depth: str, order: str) -> bytes:
    if order == "bgra" and img.ndim == 3 and img.shape[2] >= 3:
        img = img[..., [2, 1, 0, 3][: img.shape[2]]]
    return np.ascontiguousarray(img, dtype=WIRE[depth]).tobytes()


def _unwire(data: bytes, depth: str, order: str, channels: int) -> np.ndarray:
    img = np.frombuffer(data, WIRE[depth]).reshape(H, W, channels)
    if order == "bgra":
        img = img[..., [2, 1, 0, 3][:channels]]
    return img


def _post(client, frame_bytes, params, hints_bytes=None):
    files = {"frame": ("frame.raw", frame_bytes, "application/octet-stream")}
    if hints_bytes is not None:
        files["hints"] = ("hints.raw", hints_bytes, "application/octet-stream")
    return client.post("/colorize", params=params, files=files)


def test_health_and_models(client, user_models):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"] == __version__
    assert {"tiny-gray", "tiny-line"} <= set(body["models"])
    assert body["provider"] is None  # nothing loaded yet
    models = {m["name"]: m for m in client.get("/models").json()}
    assert models["tiny-gray"]["task"] == "grayscale"
    assert models["tiny-line"]["task"] == "lineart"
    assert models["tiny-gray"]["builtin"] is False
    assert set(models["tiny-gray"]) == {
        "name",
        "task",
        "file",
        "train_size",
        "multiple_of",
        "trained_on",
        "palette",
        "builtin",
    }
    # a model file dropped into the user folder appears without a restart
    shutil.copy(user_models / "tiny-gray.onnx", user_models / "another.onnx")
    names = [m["file"] for m in client.get("/models").json()]
    assert any(n.endswith("another.onnx") for n in names)


@pytest.mark.parametrize(
    ("channels", "depth", "order", "model"),
    [
        (4, "u8", "bgra", "tiny-gray"),
        (4, "u8", "rgba", "tiny-line"),
        (3, "u16", "rgba", "tiny-gray"),
        (4, "f32", "bgra", "tiny-line"),
        (2, "u8", "rgba", "tiny-gray"),
        (1, "u16", "rgba", "tiny-line"),
    ],
)
def test_colorize_equals_the_pipeline(client, named_models, channels, depth, order, model):
    dtype = {"u8": np.uint8, "u16": np.uint16, "f32": np.float32}[depth]
    frame = _frame(channels, dtype)
    params = {
        "width": W,
        "height": H,
        "channels": channels,
        "depth": depth,
        "order": order,
        "model": model,
    }
    r = _post(client, _wire(frame, depth, order), params)
    assert r.status_code == 200, r.text
    out_channels = 4 if channels in (2, 4) else 3
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["X-InkHue-Channels"] == str(out_channels)
    assert r.headers["X-InkHue-Depth"] == depth and r.headers["X-InkHue-Order"] == order
    assert r.headers["X-InkHue-Model"] == model
    got = _unwire(r.content, depth, order, out_channels)
    expected = colorize_frame(
        frame, load_model(named_models[model], "cpu"), options=ColorizeOptions()
    )
    np.testing.assert_array_equal(got, expected)
    if channels in (2, 4):
        np.testing.assert_array_equal(got[..., 3], frame[..., -1])  # alpha kept exactly
    # /health now names the provider of the loaded session
    assert client.get("/health").json()["provider"] == "CPUExecutionProvider"


def test_f16_frames_round_trip_through_float32(client, named_models):
    frame16 = _frame(4, np.float32).astype(np.float16)
    params = {
        "width": W,
        "height": H,
        "channels": 4,
        "depth": "f16",
        "order": "bgra",
        "model": "tiny-gray",
    }
    r = _post(client, _wire(frame16, "f16", "bgra"), params)
    assert r.status_code == 200, r.text
    got = _unwire(r.content, "f16", "bgra", 4)
    expected = colorize_frame(
        frame16.astype(np.float32), load_model(named_models["tiny-gray"], "cpu")
    )
    np.testing.assert_array_equal(got, expected.astype(np.float16))


def test_raw_body_alternative(client, named_models):
    frame = _frame(4)
    params = {"width": W, "height": H, "channels": 4, "depth": "u8", "model": "tiny-gray"}
    r = client.post(
        "/colorize",
        params=params,
        content=frame.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    expected = colorize_frame(frame, load_model(named_models["tiny-gray"], "cpu"))
    np.testing.assert_array_equal(_unwire(r.content, "u8", "rgba", 4), expected)


@pytest.mark.parametrize("order", ["rgba", "bgra"])
def test_hints_change_the_result_as_the_pipeline_does(client, named_models, order):
    frame = _frame(4)
    hints = _hints()
    params = {
        "width": W,
        "height": H,
        "channels": 4,
        "depth": "u8",
        "order": order,
        "model": "tiny-line",
        "palette": "none",
    }
    plain = _post(client, _wire(frame, "u8", order), params)
    hinted = _post(client, _wire(frame, "u8", order), params, _wire(hints, "u8", order))
    assert plain.status_code == hinted.status_code == 200, (plain.text, hinted.text)
    got = _unwire(hinted.content, "u8", order, 4)
    model = load_model(named_models["tiny-line"], "cpu")
    np.testing.assert_array_equal(got, colorize_frame(frame, model, hints=hints))
    changed = np.any(got != _unwire(plain.content, "u8", order, 4), axis=-1)
    assert changed[9, 10], "the hinted pixel must change"
    # the hint is red: in its region, red dominates green
    assert int(got[9, 10, 0]) > int(got[9, 10, 1]) + 20


def test_options_reach_the_pipeline(client, named_models):
    frame = _frame(3)
    palette = ["#ff0000", "#00ff00"]
    params = {
        "width": W,
        "height": H,
        "channels": 3,
        "depth": "u8",
        "model": "tiny-line",
        "output": "fill",
        "regions": "false",
        "detail": 0.5,
        "palette": json.dumps(palette),
    }
    model = load_model(named_models["tiny-line"], "cpu")
    for mirror in (True, False):
        query = params if mirror else {**params, "mirror": "false"}
        r = _post(client, frame.tobytes(), query)
        assert r.status_code == 200, r.text
        options = ColorizeOptions(
            detail=0.5, regions=False, output="fill", palette=tuple(palette), mirror_average=mirror
        )
        expected = colorize_frame(frame, model, options=options)
        np.testing.assert_array_equal(_unwire(r.content, "u8", "rgba", 3), expected)


def test_model_palette_is_used_unless_turned_off(client, make_tiny_model, user_models):
    make_tiny_model(
        "grayscale", user_models / "pal.onnx", name="tiny-pal", palette=["#0000ff", "#ffff00"]
    )
    frame = _frame(3)
    params = {"width": W, "height": H, "channels": 3, "depth": "u8", "model": "tiny-pal"}
    model = load_model(user_models / "pal.onnx", "cpu")
    with_pal = _post(client, frame.tobytes(), params)
    without = _post(client, frame.tobytes(), {**params, "palette": "none"})
    exp_pal = colorize_frame(frame, model, options=ColorizeOptions(palette=model.info.palette))
    exp_none = colorize_frame(frame, model, options=ColorizeOptions())
    np.testing.assert_array_equal(_unwire(with_pal.content, "u8", "rgba", 3), exp_pal)
    np.testing.assert_array_equal(_unwire(without.content, "u8", "rgba", 3), exp_none)


@pytest.mark.parametrize(
    ("params", "size", "needle"),
    [
        ({}, W * H * 4 - 1, "frame: expected"),
        ({"channels": 3}, W * H * 4, "frame: expected"),
        ({"depth": "u16"}, W * H * 4, "depth u16"),
        ({"width": 0}, 0, "'width'"),
        ({"channels": 5}, 10, "'channels'"),
        ({"depth": "u32"}, 10, "'depth'"),
        ({"order": "argb"}, 10, "'order'"),
        ({"detail": 0}, W * H * 4, "'detail'"),
        ({"output": "lines"}, W * H * 4, "'output'"),
        ({"palette": "red"}, W * H * 4, "palette"),
        # 4,000 colors took 42 s of one inference slot; over 256 is refused up front
        ({"palette": json.dumps([f"#{i:06x}" for i in range(1000)])}, W * H * 4, "palette"),
        ({"palette": json.dumps([f"#{i:06x}" for i in range(257)])}, W * H * 4, "256"),
        ({"width": "abc"}, 10, "'width'"),
    ],
)
def test_bad_requests_are_400_naming_the_field(client, params, size, needle):
    query = {"width": W, "height": H, "channels": 4, "depth": "u8", "model": "tiny-gray", **params}
    r = _post(client, b"\0" * size, query)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    assert "\n" not in r.json()["error"]


def test_wrong_hints_size_and_missing_parts(client):
    query = {"width": W, "height": H, "channels": 4, "depth": "u8", "model": "tiny-gray"}
    r = _post(client, b"\0" * (W * H * 4), query, b"\0" * 10)
    assert r.status_code == 400 and r.json()["error"].startswith("hints: expected")
    r = client.post("/colorize", params=query, files={"other": ("x", b"1")})
    assert r.status_code == 400 and "'frame' is missing" in r.json()["error"]
    r = client.post("/colorize", params=query, data={"frame": "abc"}, files={"hints": ("h", b"1")})
    assert r.status_code == 400 and "file part" in r.json()["error"]
    r = client.post(
        "/colorize", params=query, content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "Content-Type" in r.json()["error"]


def test_default_model_of_the_task(client):
    lineart = {m["name"] for m in client.get("/models").json() if m["task"] == "lineart"}
    query = {"width": W, "height": H, "channels": 3, "depth": "u8", "task": "lineart"}
    r = _post(client, _frame(3).tobytes(), query)
    assert r.status_code == 200, r.text
    assert r.headers["X-InkHue-Model"] in lineart  # the bundled one, else the first listed


def test_preload_names_the_provider_at_startup(make_client):
    client = make_client(preload=True)
    assert client.get("/health").json()["provider"] == "CPUExecutionProvider"


def test_unknown_model_is_404_and_lists_names(client):
    query = {"width": 2, "height": 2, "channels": 4, "depth": "u8", "model": "nope"}
    r = _post(client, b"\0" * 16, query)
    assert r.status_code == 404
    assert "tiny-gray" in r.json()["error"]
    # clients name models, never server paths
    r = _post(client, b"\0" * 16, {**query, "model": "/etc/passwd"})
    assert r.status_code == 404


def test_body_too_large_is_413(make_client):
    client = make_client(max_body_bytes=1000)
    query = {"width": 20, "height": 20, "channels": 4, "depth": "u8", "model": "tiny-gray"}
    r = _post(client, b"\0" * 1600, query)
    assert r.status_code == 413
    assert "limit of 1000 bytes" in r.json()["error"]

    # no Content-Length: counted while streaming
    def chunks():
        for _ in range(20):
            yield b"\0" * 100

    r = client.post(
        "/colorize",
        params=query,
        content=chunks(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]
    # and a JSON body of a job too
    r = client.post(
        "/jobs", content=b"{" + b" " * 2000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_frame_over_the_pixel_limit_is_413(make_client):
    client = make_client(max_pixels=100)
    query = {"width": 20, "height": 20, "channels": 1, "depth": "u8", "model": "tiny-gray"}
    r = _post(client, b"\0" * 400, query)
    assert r.status_code == 413 and "pixels" in r.json()["error"]


def test_unexpected_errors_are_500_one_line(make_client, monkeypatch):
    from inkhue_engine import server

    client = make_client(raise_server_exceptions=False)

    def boom(*args, **kwargs):
        raise RuntimeError("kaput\ndetails")

    monkeypatch.setattr(server, "colorize_frame", boom)
    query = {"width": 2, "height": 2, "channels": 4, "depth": "u8", "model": "tiny-gray"}
    r = _post(client, b"\0" * 16, query)
    assert r.status_code == 500
    assert r.json() == {"error": "internal error: RuntimeError: kaput"}


def test_unknown_route_is_json_404(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()


def test_openapi_lists_the_endpoints_and_binary_bodies(client):
    from openapi_spec_validator import validate  # dev dependency

    spec = client.get("/openapi.json").json()
    validate(spec)
    paths = spec["paths"]
    for path, method in [
        ("/health", "get"),
        ("/models", "get"),
        ("/colorize", "post"),
        ("/jobs", "post"),
        ("/jobs/{job_id}/frames/{index}", "put"),
        ("/jobs/{job_id}/hints/{index}", "put"),
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}/frames/{index}", "get"),
        ("/jobs/{job_id}", "delete"),
        ("/jobs/files", "post"),
    ]:
        assert method in paths[path], (path, method)
    colorize = paths["/colorize"]["post"]
    assert "multipart/form-data" in colorize["requestBody"]["content"]
    params = {p["name"] for p in colorize["parameters"]}
    assert {
        "width",
        "height",
        "channels",
        "depth",
        "order",
        "model",
        "task",
        "detail",
        "regions",
        "mirror",
        "output",
        "palette",
    } <= params
    assert "application/octet-stream" in colorize["responses"]["200"]["content"]
    put = paths["/jobs/{job_id}/frames/{index}"]["put"]
    assert "application/octet-stream" in put["requestBody"]["content"]
    get = paths["/jobs/{job_id}/frames/{index}"]["get"]
    assert "application/octet-stream" in get["responses"]["200"]["content"]
    assert spec["openapi"].startswith("3.")


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_schema_reference_resolves(client):
    # /train's JSON body referred to TrainFilesRequest, which was not in the components
    spec = client.get("/openapi.json").json()
    components = spec["components"]["schemas"]
    refs = _refs(spec)
    assert "#/components/schemas/TrainFilesRequest" in refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in components, ref
    assert "data" in components["TrainFilesRequest"]["properties"]
    assert components["TrainFilesRequest"]["additionalProperties"] is False
    # the same document twice (it is built once)
    assert client.get("/openapi.json").json() == spec


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/train", "GET, POST"),
        ("put", "/jobs", "POST"),
        ("post", "/jobs/abc", "DELETE, GET"),
        ("options", "/health", "GET"),
        ("options", "/jobs/files", "POST"),  # not /jobs/{job_id}'s GET and DELETE
        ("get", "/train/x/y", None),
    ],
)
def test_405_names_every_method_of_the_path(client, method, path, allowed):
    # Starlette named the first route's methods only: GET for /train, not POST
    r = client.request(method.upper(), path)
    if allowed is None:
        assert r.status_code == 404
        return
    assert r.status_code == 405
    assert r.headers["Allow"] == allowed
    assert "not allowed" in r.json()["error"]


@pytest.mark.parametrize("field", ["carry", "regions", "mirror"])
@pytest.mark.parametrize("value", [0, 1, "true", "yes"])
def test_json_booleans_are_booleans(client, field, value):
    # "carry": 0 was taken as false: a JSON body that breaks the schema is refused
    body = {
        "width": 4,
        "height": 4,
        "channels": 1,
        "depth": "u8",
        "frame_count": 1,
        "model": "tiny-gray",
        field: value,
    }
    r = client.post("/jobs", json=body)
    assert r.status_code == 400 and field in r.json()["error"], r.text
    assert client.post("/jobs", json={**body, field: False}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"frame_count": True},
        {"frame_count": "2"},
        {"width": "4"},
        {"detail": "1.0"},
        {"detail": True},
    ],
)
def test_json_numbers_are_numbers(client, body):
    base = {
        "width": 4,
        "height": 4,
        "channels": 1,
        "depth": "u8",
        "frame_count": 1,
        "model": "tiny-gray",
    }
    r = client.post("/jobs", json={**base, **body})
    assert r.status_code == 400 and "must be a JSON number" in r.json()["error"], r.text
    # an integral float is an integer in JSON Schema: still taken
    assert client.post("/jobs", json={**base, "frame_count": 2.0}).status_code == 200


def test_empty_palette_query_is_refused_by_the_schema_too(client):
    spec = client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/colorize"]["post"]["parameters"]}
    palette = params["palette"]["schema"]["anyOf"][0]
    assert palette["minLength"] == 1
    r = _post(
        client, b"\0" * 16, {"width": 4, "height": 4, "channels": 1, "depth": "u8", "palette": ""}
    )
    assert r.status_code == 400 and "palette" in r.json()["error"]


def test_inference_does_not_block_the_event_loop(client, monkeypatch):
    """While one colorize request is stuck in inference, other requests are answered."""
    import threading

    from inkhue_engine import server

    gate, entered = threading.Event(), threading.Event()
    real = server.colorize_frame

    def slow(*args, **kwargs):
        entered.set()
        assert gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(server, "colorize_frame", slow)
    query = {"width": W, "height": H, "channels": 3, "depth": "u8", "model": "tiny-gray"}
    results = {}
    worker = threading.Thread(
        target=lambda: results.setdefault("r", _post(client, _frame(3).tobytes(), query))
    )
    worker.start()
    try:
        assert entered.wait(10)
        assert client.get("/health").status_code == 200  # answered while inference waits
        assert "r" not in results
    finally:
        gate.set()
        worker.join(10)
    assert results["r"].status_code == 200
