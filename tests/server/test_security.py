"""Who may talk to the server: bind check, bearer token, Host header."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from inkhue_engine.errors import InputError
from inkhue_engine.server import ServerConfig, check_bind, create_app, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_no_token(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "myhost", "example.com"])
def test_other_binds_need_a_token(host):
    assert not is_loopback(host)
    with pytest.raises(InputError, match="token"):
        check_bind(host, None)
    with pytest.raises(InputError):
        check_bind(host, "")
    check_bind(host, "s3cret-token")


def test_token_required_on_every_request_when_exposed(user_models):
    app = create_app(ServerConfig(host="0.0.0.0", token="s3cret", device="cpu"))
    with TestClient(app, base_url="http://192.168.1.5:8765") as client:
        for method, path in [
            ("get", "/health"),
            ("get", "/models"),
            ("get", "/openapi.json"),
            ("post", "/colorize"),
            ("get", "/jobs/x"),
        ]:
            r = getattr(client, method)(path)
            assert r.status_code == 401, path
            assert "token" in r.json()["error"]
            assert r.headers["WWW-Authenticate"] == "Bearer"
        bad = {"Authorization": "Bearer s3cret-not"}
        assert client.get("/models", headers=bad).status_code == 401
        assert client.get("/models", headers={"Authorization": "Basic s3cret"}).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.get("/health", headers=good).status_code == 200
        assert client.get("/models", headers=good).status_code == 200
        # any Host header is fine when exposed (the token is the guard)
        assert client.get("/health", headers={**good, "Host": "example.com"}).status_code == 200


def test_token_on_loopback_leaves_health_open(user_models):
    app = create_app(ServerConfig(token="s3cret", device="cpu"))
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/models").status_code == 401
        r = client.get("/models", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_loopback_server_refuses_foreign_host_headers(client):
    # DNS rebinding: a web page's request reaches 127.0.0.1 with its own Host name
    r = client.get("/health", headers={"Host": "evil.example:8765"})
    assert r.status_code == 400 and "Host" in r.json()["error"]
    for host in ("localhost:8765", "127.0.0.1", "[::1]:8765", "localhost"):
        assert client.get("/health", headers={"Host": host}).status_code == 200, host


def _frame_form() -> dict:
    return {"frame": ("frame.raw", b"\x80" * 16, "application/octet-stream")}


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://evil.example:8765",
        "null",
        "http://localhost:9999",
        "http://127.0.0.1.evil.example:8765",
        "file://",
        "chrome-extension://abc",
    ],
)
def test_cross_site_requests_are_refused(client, origin):
    # a web page open in the artist's browser posts a simple multipart form (no CORS
    # preflight) to the loopback server, which has no token
    r = client.post(
        "/colorize",
        params={"width": 4, "height": 4, "channels": 1, "depth": "u8"},
        files=_frame_form(),
        headers={"Origin": origin},
    )
    assert r.status_code == 403, r.text
    assert "Origin" in r.json()["error"]
    # it does not reach /train's handler either (which would answer 400/501)
    r = client.post(
        "/train",
        files={"frames": ("a.png", b"x")},
        data={"options": "{}"},
        headers={"Origin": origin},
    )
    assert r.status_code == 403
    assert client.get("/models", headers={"Origin": origin}).status_code == 403


def test_fetch_metadata_cross_site_is_refused(client):
    for site in ("cross-site", "same-site"):
        r = client.get("/models", headers={"Sec-Fetch-Site": site})
        assert r.status_code == 403 and "Sec-Fetch-Site" in r.json()["error"]
    for site in ("same-origin", "none"):  # the server's own /docs page; a typed URL
        assert client.get("/models", headers={"Sec-Fetch-Site": site}).status_code == 200


def test_same_origin_and_plain_clients_still_work(client):
    params = {"width": 4, "height": 4, "channels": 1, "depth": "u8", "model": "tiny-gray"}
    # the plugin and scripts send no Origin
    assert client.post("/colorize", params=params, files=_frame_form()).status_code == 200
    # the server's own pages (/docs) are same-origin
    for origin, host in [
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
        ("http://localhost:8765", "localhost:8765"),
        ("http://[::1]:8765", "[::1]:8765"),
        ("http://localhost", "localhost"),
    ]:
        r = client.post(
            "/colorize",
            params=params,
            files=_frame_form(),
            headers={"Origin": origin, "Host": host},
        )
        assert r.status_code == 200, (origin, r.text)


def test_cross_site_refused_with_a_token_too(user_models):
    app = create_app(ServerConfig(host="0.0.0.0", token="s3cret", device="cpu"))
    good = {"Authorization": "Bearer s3cret"}
    with TestClient(app, base_url="http://192.168.1.5:8765") as client:
        r = client.get("/models", headers={**good, "Origin": "https://evil.example"})
        assert r.status_code == 403
        r = client.get("/models", headers={**good, "Origin": "http://192.168.1.5:8765"})
        assert r.status_code == 200
