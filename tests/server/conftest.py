"""Fixtures of the server tests: tiny named models in a temporary user models folder,
and a TestClient on an app built by ``create_app``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inkhue_engine.server import ServerConfig, create_app

#: A loopback base URL: the server refuses requests addressed to other host names.
BASE_URL = "http://127.0.0.1:8765"


@pytest.fixture(scope="session")
def named_models(make_tiny_model, tmp_path_factory) -> dict[str, Path]:
    """Two tiny models with distinct names, exported once per session."""
    folder = tmp_path_factory.mktemp("server_models")
    return {
        "tiny-gray": make_tiny_model("grayscale", folder / "tiny-gray.onnx", name="tiny-gray"),
        "tiny-line": make_tiny_model("lineart", folder / "tiny-line.onnx", name="tiny-line"),
    }


@pytest.fixture
def user_models(tmp_path, monkeypatch, named_models) -> Path:
    """A fresh user models folder (INKHUE_MODELS_DIR) holding the two tiny models."""
    folder = tmp_path / "user_models"
    folder.mkdir()
    for path in named_models.values():
        shutil.copy(path, folder / path.name)
    monkeypatch.setenv("INKHUE_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def make_client(user_models) -> Iterator[Callable[..., TestClient]]:
    """Factory: ``make_client(**config_fields)`` -> an entered TestClient (device cpu)."""
    clients: list[TestClient] = []

    def make(raise_server_exceptions: bool = True, **fields) -> TestClient:
        fields.setdefault("device", "cpu")
        client = TestClient(
            create_app(ServerConfig(**fields)),
            base_url=BASE_URL,
            raise_server_exceptions=raise_server_exceptions,
        )
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()
