"""``inkhue serve``: argument handling in-process, and one real server in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from inkhue_engine import __version__
from inkhue_engine.cli import build_parser, main
from inkhue_engine.commands.serve import config_from_args


def test_non_loopback_without_token_refuses_to_start(monkeypatch, capsys):
    monkeypatch.delenv("INKHUE_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "--host '0.0.0.0'" in err and "token" in err


def test_config_from_args(monkeypatch, tmp_path):
    monkeypatch.setenv("INKHUE_TOKEN", "from-env")
    args = build_parser().parse_args(
        ["serve", "--root", str(tmp_path), "--models-dir", str(tmp_path), "--max-body-mb", "2"]
    )
    config = config_from_args(args)
    assert config.token == "from-env" and config.root == tmp_path.resolve()
    assert config.models_dirs == (tmp_path.resolve(),) and config.max_body_bytes == 2 << 20
    assert config.host == "127.0.0.1" and config.port == 8765 and config.preload
    args = build_parser().parse_args(["serve", "--token", "cli", "--root", str(tmp_path / "x")])
    with pytest.raises(Exception, match="--root"):
        config_from_args(args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, user_models, *args: str, **env_extra: str) -> subprocess.Popen:
    """``inkhue serve`` on ``port`` in a subprocess (stdin a pipe the test holds)."""
    env = {**os.environ, "INKHUE_MODELS_DIR": str(user_models), **env_extra}
    env.pop("INKHUE_TOKEN", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inkhue_engine.cli",
            "serve",
            "--port",
            str(port),
            "--device",
            "cpu",
            *args,
        ],  # fmt: skip
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_health(proc: subprocess.Popen, port: int) -> dict:
    """The server's first /health answer (AssertionError with its output if none in 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{proc.stdout.read()}") from None
            time.sleep(0.2)


def _interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C the server; killed if it has not stopped 15 s later."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_real_server_answers_health(user_models):
    port = _free_port()
    proc = _serve(port, user_models)
    try:
        body = _wait_health(proc, port)
        assert body["status"] == "ok" and body["version"] == __version__
        assert {"tiny-gray", "tiny-line"} <= set(body["models"])
    finally:
        _interrupt(proc)
    assert proc.returncode in (0, -signal.SIGINT), proc.stdout.read()


@pytest.mark.slow
def test_a_server_started_by_the_plugin_stops_when_its_parent_goes(user_models):
    # the Krita plugin sets INKHUE_STOP_ON_STDIN_EOF=1 and holds the engine's stdin: when
    # Krita exits, even by a crash, stdin closes and the engine stops (its port freed)
    port = _free_port()
    proc = _serve(port, user_models, "--no-preload", INKHUE_STOP_ON_STDIN_EOF="1")
    try:
        _wait_health(proc, port)
        proc.stdin.close()  # what the parent's death does
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, -signal.SIGTERM), proc.stdout.read()
    # without the variable (a server someone runs), stdin closing changes nothing
    port = _free_port()
    proc = _serve(port, user_models, "--no-preload")
    try:
        _wait_health(proc, port)
        proc.stdin.close()
        time.sleep(1.5)
        assert proc.poll() is None
    finally:
        _interrupt(proc)
