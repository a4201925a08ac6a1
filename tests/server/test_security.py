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
        for method, path in [("get", "/health"), ("get", "/models"), ("get", "/openapi.json"),
                             ("post", "/colorize"), ("get", "/jobs/x")]:
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
