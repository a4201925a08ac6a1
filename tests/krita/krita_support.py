"""Helpers of the real-Krita tests (pytest side): install the plugin into a temporary HOME,
run Krita / kritarunner with hard timeouts, run ``inkhue serve``, talk to it directly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REQUIRED_TOOLS = ("krita", "kritarunner", "xvfb-run", "import")
INSTALL_HINT = (
    "apt-get update && apt-get install -y --no-install-recommends krita python3-pyqt5 "
    "xvfb xauth imagemagick"
)


def require_krita() -> None:
    """Skip when Krita's tools are missing, unless INKHUE_REQUIRE_KRITA=1 (then fail)."""
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if not missing:
        return
    message = f"missing {', '.join(missing)}: {INSTALL_HINT}"
    if os.environ.get("INKHUE_REQUIRE_KRITA") == "1":
        pytest.fail(f"INKHUE_REQUIRE_KRITA=1 but {message}", pytrace=False)
    pytest.skip(message)


def artifacts_dir() -> Path:
    path = Path(os.environ.get("INKHUE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_plugin(home: Path, zip_path: Path, extra: dict[str, Path] | None = None) -> Path:
    """Unzip the plugin into ``home``'s pykrita folder and enable it (and ``extra`` plugins:
    name -> package folder) in kritarc; returns the pykrita folder."""
    pykrita = home / ".local" / "share" / "krita" / "pykrita"
    pykrita.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(pykrita)
    names = ["inkhue"]
    for name, folder in (extra or {}).items():
        shutil.copytree(folder, pykrita / name, ignore=shutil.ignore_patterns("__pycache__"))
        (pykrita / f"{name}.desktop").write_text(
            "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
            f"X-KDE-Library={name}\nX-Python-2-Compatible=false\nName={name}\n"
            "Comment=InkHue test driver\n"
        )
        names.append(name)
    config = home / ".config"
    config.mkdir(parents=True, exist_ok=True)
    lines = ["[python]"] + [f"enable_{n}=true" for n in names]
    (config / "kritarc").write_text("\n".join(lines) + "\n")
    return pykrita


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    timed_out: bool


def run_bounded(cmd: list[str], env: dict[str, str], timeout_s: float, log_path: Path) -> Run:
    """Run ``cmd`` in its own process group; kill the whole group on timeout. Output -> file."""
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        else:  # Xvfb or helpers left behind by a crash
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return Run(
        proc.returncode, log_path.read_text(errors="replace"), time.monotonic() - started, timed_out
    )


def krita_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "PYTHONPATH",
            "PYTHONHOME",
            "VIRTUAL_ENV",
            "QT_QPA_PLATFORM",
            "QT_API",
            "PYTEST_QT_API",
            "INKHUE_QT_API",
            "DISPLAY",
        )
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(home / "run"),
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
    )
    (home / "run").mkdir(mode=0o700, exist_ok=True)
    env.update(extra)
    return env


class EngineServer:
    """``inkhue serve`` on a free port, run from the project's environment."""

    def __init__(self, models_dir: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("inkhue")
        cmd = (
            [str(exe)]
            if exe.exists()
            else [
                sys.executable,
                "-c",
                "import sys; from inkhue_engine.cli import main; sys.exit(main())",
            ]
        )
        cmd += ["serve", "--port", str(self.port), "--models-dir", str(models_dir), "--no-preload"]
        env = dict(os.environ, INKHUE_MODELS_DIR=str(workdir / "no-user-models"))
        self.log_path = workdir / "inkhue-serve.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "inkhue serve did not start:\n" + self.log_path.read_text()
                    ) from None
                time.sleep(0.2)

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        ctype: str | None = None,
        query: dict | None = None,
    ) -> tuple[bytes, dict]:
        url = self.url + path + ("?" + urlencode(query) if query else "")
        req = urllib.request.Request(url, data=body, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.read(), dict(r.headers)

    def colorize(self, frame: bytes, layout: dict, model: str, **options: str) -> bytes:
        """One frame with a direct multipart POST /colorize (no plugin code involved);
        ``options``: more query parameters (e.g. mirror="false")."""
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="frame"; '
            f'filename="f"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        body += frame + f"\r\n--{boundary}--\r\n".encode()
        query = {**{k: str(v) for k, v in layout.items()}, "model": model, **options}
        data, _ = self.request(
            "POST", "/colorize", body, f"multipart/form-data; boundary={boundary}", query
        )
        return data

    def job(self, frames: list[bytes], layout: dict, model: str) -> list[bytes]:
        """Frames through a direct /jobs round trip (no plugin code involved)."""
        spec = {**layout, "model": model, "frame_count": len(frames)}
        created, _ = self.request("POST", "/jobs", json.dumps(spec).encode(), "application/json")
        job_id = json.loads(created)["id"]
        for i, frame in enumerate(frames):
            self.request("PUT", f"/jobs/{job_id}/frames/{i}", frame, "application/octet-stream")
        deadline = time.monotonic() + 120
        while self.get(f"/jobs/{job_id}")["state"] != "done":
            assert time.monotonic() < deadline, "direct job did not finish"
            time.sleep(0.1)
        out = [self.request("GET", f"/jobs/{job_id}/frames/{i}")[0] for i in range(len(frames))]
        self.request("DELETE", f"/jobs/{job_id}")
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
