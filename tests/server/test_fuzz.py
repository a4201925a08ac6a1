"""A bounded schemathesis run against a real ``inkhue serve``: no server error, no answer
that breaks the API description, no request that breaks it accepted (every check of
schemathesis; settings in tests/server/schemathesis.toml).

Time: ``INKHUE_FUZZ_SECONDS`` (default 120) for the whole run; ``INKHUE_FUZZ_SEED`` picks
the examples (default fixed, so CI is reproducible; any failure prints its curl command).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"inkhue serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"inkhue serve did not answer {url} within {seconds:.0f} s")


@pytest.mark.timeout(900)
def test_schemathesis_finds_nothing(tmp_path, named_models):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        pytest.fail("schemathesis is missing: pip install -e '.[dev]'")
    models = tmp_path / "models"
    models.mkdir()
    for path in named_models.values():
        shutil.copy(path, models / path.name)
    root = tmp_path / "root"
    root.mkdir()
    port = _free_port()
    env = {**os.environ, "INKHUE_MODELS_DIR": str(tmp_path / "user_models")}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inkhue_engine.cli",
            "serve",
            "--port",
            str(port),
            "--root",
            str(root),
            "--models-dir",
            str(models),
            "--device",
            "cpu",
            "--no-preload",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/health", server)
        seconds = os.environ.get("INKHUE_FUZZ_SECONDS", "120")
        run = subprocess.run(
            [
                st,
                "--config-file",
                str(CONFIG),
                "--no-color",
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--workers",
                "1",
                "--max-time",
                seconds,
                "--request-timeout",
                "30",
                "--seed",
                os.environ.get("INKHUE_FUZZ_SEED", "2"),
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=float(seconds) + 300,
        )
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    found = run.stdout.find("FAILURES")
    summary = run.stdout[found if found >= 0 else -6000 :][:12000]
    assert run.returncode == 0, f"schemathesis found problems:\n{summary}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1], summary
    assert "Traceback" not in (tmp_path / "serve.log").read_text(errors="replace")
