"""Memory of a long animation through the docker's chunked path (issue 14 item 3).

    python benchmarks/stream_animation.py [--frames 1000] [--width 1920] [--height 1080]
                                          [--chunk 16] [--model grayscale] [--json OUT]

Runs the Krita plugin's own code for "Colorize animation" (PanelModel.colorize_animation:
AnimationJob chunks of ``--chunk`` keyframes, one engine job each) against a REAL
``inkhue serve`` process started here, with a stand-in for Krita (``StreamHost``) that makes
each keyframe's BGRA u8 pixels only when the plugin reads it (as KritaHost does) and drops
each result once "inserted" (checking its size). While it runs, the resident memory (VmRSS)
of both processes is sampled; the report gives it at every tenth of the frames and the peaks
(VmHWM). Bounded memory means the figures do not grow with the frame count: holding the whole
animation would take frames x (input + result) = 16.6 GB for 1,000 frames of 1080p.

A printed report, not a timed test; tests/plugin/test_stream_memory.py runs the same code on
a few small frames and checks the bound on what the plugin holds. Figures: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "krita_plugin") not in sys.path:
    sys.path.insert(0, str(ROOT / "krita_plugin"))

from inkhue.host import AnimationRequest, Host  # noqa: E402
from inkhue.pixels import FrameLayout  # noqa: E402
from inkhue.qt import QtCore, QtWidgets  # noqa: E402


def rss_kib(pid: int | str = "self") -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc (Linux)."""
    found = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found.get("VmRSS", 0), found.get("VmHWM", 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models_dir: Path | None, log_path: Path) -> tuple[subprocess.Popen, str]:
    """A real ``inkhue serve`` process on a free port (its output in ``log_path``)."""
    port = free_port()
    cmd = [sys.executable, "-m", "inkhue_engine.cli", "serve", "--port", str(port)]
    if models_dir is not None:
        cmd += ["--models-dir", str(models_dir)]
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"inkhue serve exited with {proc.returncode}: see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"inkhue serve did not listen within 120 s: see {log_path}")


def base_frames(width: int, height: int, count: int = 4) -> list[bytearray]:
    """A few distinct BGRA u8 cartoon-like frames (gray regions split by dark lines)."""
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    out = []
    for seed in range(count):
        gray = (60 + (x // 3 + y // 2 + seed * 40) % 180).astype(np.uint8)
        gray[(x + 7 * seed) % 97 < 3] = 20
        gray[(y + 5 * seed) % 61 < 3] = 25
        bgra = np.stack([gray, gray, gray, np.full_like(gray, 255)], axis=-1)
        out.append(bytearray(bgra.tobytes()))
    return out


class StreamHost(Host):
    """Krita stand-in: keyframes made when read, results dropped once inserted."""

    def __init__(self, frames: int, width: int, height: int) -> None:
        self.layout = FrameLayout(width, height, 4, "u8", "bgra")
        self.frames = frames
        self.pool = base_frames(width, height)
        self.read = 0  # keyframes read (made) so far
        self.inserted = 0  # results inserted (and dropped) so far
        self.max_outstanding = 0  # most keyframes read but not inserted yet, at any time
        self.result_name = ""
        self.error = ""
        self.bad_results = 0

    def document_key(self) -> str:
        return "stream"

    def layer_names(self) -> list[str]:
        return []

    def palette_names(self) -> list[str]:
        return []

    def palette_colors(self, name: str) -> list[str]:
        return []

    def _reader(self, k: int):
        def read() -> bytes:
            self.read += 1
            self.max_outstanding = max(self.max_outstanding, self.read - self.inserted)
            return bytes(self.pool[k % len(self.pool)])  # a fresh copy, as pixelData gives

        return read

    def read_animation(
        self, task: str, hint_layer: str = "", keyframes: str = ""
    ) -> AnimationRequest:
        return AnimationRequest(
            [self._reader(k) for k in range(self.frames)],
            list(range(self.frames)),
            self.layout,
            None,
            "layer 'Ink' of 'stream'",
            {"doc_key": "stream"},
        )

    def insert_animation(self, request, results, layout, model_name, task, done, progress=None):
        host = self
        expected = layout.nbytes

        class Insertion:
            over = False

            def feed(self, more) -> None:
                for data in more:
                    host.bad_results += len(data) != expected
                    host.inserted += 1
                if host.inserted >= host.frames and not self.over:
                    self.over = True
                    done("InkHue " + model_name, "")

            def cancel(self) -> None:
                self.fail("")

            def fail(self, error: str) -> None:
                if not self.over:
                    self.over = True
                    done("", error)

        insertion = Insertion()
        insertion.feed(results)
        return insertion

    def remove_result(self, context) -> None:
        pass


def run(
    url: str,
    frames: int,
    width: int,
    height: int,
    chunk: int,
    model: str,
    server_pid: int | None = None,
    timeout_s: float = 7200.0,
    sample_s: float = 0.25,
) -> dict:
    """Colorize ``frames`` keyframes through PanelModel.colorize_animation; returns the
    report (memory samples, peaks, what the plugin held, seconds)."""
    from inkhue.client import AnimationJob
    from inkhue.panel_model import PanelModel
    from inkhue.settings import QSettingsStore

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    host = StreamHost(frames, width, height)
    with tempfile.TemporaryDirectory() as tmp:
        store = QSettingsStore(str(Path(tmp) / "settings.ini"))
        store.write("server_url", url)
        store.write("last_model", model)
        panel = PanelModel(host, store)
        panel.ANIMATION_CHUNK = chunk
        job_sizes: list[int] = []
        create_job = panel.client.create_job

        def recording_create_job(options, layout, total, callback, keyframes=None):
            job_sizes.append(total)
            return create_job(options, layout, total, callback, keyframes)

        panel.client.create_job = recording_create_job
        panel.connect_engine()
        _spin(app, lambda: bool(panel.models) or bool(panel.error), 60)
        if panel.error:
            raise RuntimeError(f"connect: {panel.error}")
        samples: list[dict] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                entry = {"t": time.monotonic() - t0, "inserted": host.inserted}
                entry["client_kib"] = rss_kib()[0]
                if server_pid is not None:
                    entry["server_kib"] = rss_kib(server_pid)[0]
                samples.append(entry)
                stop.wait(sample_s)

        t0 = time.monotonic()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        panel.colorize_animation()
        _spin(app, lambda: not panel.busy, timeout_s)
        seconds = time.monotonic() - t0
        stop.set()
        sampler.join()
        report = {
            "frames": frames,
            "width": width,
            "height": height,
            "chunk": chunk,
            "model": model,
            "seconds": round(seconds, 1),
            "fps": round(host.inserted / seconds, 3) if seconds else 0.0,
            "inserted": host.inserted,
            "bad_results": host.bad_results,
            "error": panel.error,
            "message": panel.message_text,
            "job_sizes": job_sizes,
            "max_outstanding_frames": host.max_outstanding,
            # result frames still referenced by the plugin's finished engine jobs
            "retained_result_frames": sum(len(j.results) for j in panel.findChildren(AnimationJob)),
            "client_peak_kib": rss_kib()[1],
            "server_peak_kib": rss_kib(server_pid)[1] if server_pid is not None else None,
            "samples": samples,
        }
        _spin(app, lambda: panel.client.pending() == 0, 10)
        panel.deleteLater()
    return report


def _spin(app, predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s")
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.002)


def by_tenths(report: dict) -> list[dict]:
    """The last sample at or below each tenth of the frames (RSS in MiB)."""
    rows, samples = [], report["samples"]
    for tenth in range(1, 11):
        mark = report["frames"] * tenth // 10
        before = [s for s in samples if s["inserted"] <= mark] or samples[:1]
        s = before[-1]
        rows.append(
            {
                "frames_inserted": s["inserted"],
                "client_mib": round(s["client_kib"] / 1024),
                "server_mib": round(s["server_kib"] / 1024) if "server_kib" in s else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--chunk", type=int, default=16, help="keyframes per engine job")
    ap.add_argument("--model", default="grayscale", help="a model name as /models lists it")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the full report here")
    args = ap.parse_args(argv)
    log_path = Path(tempfile.gettempdir()) / "inkhue-stream-serve.log"
    proc, url = start_server(args.models_dir, log_path)
    try:
        report = run(
            url, args.frames, args.width, args.height, args.chunk, args.model, server_pid=proc.pid
        )
    finally:
        proc.terminate()
        proc.wait(30)
    mib = 1024
    print(
        f"{report['inserted']}/{args.frames} keyframes of {args.width}x{args.height} RGBA u8 "
        f"in {report['seconds']} s ({report['fps']} frames/s), chunks of {args.chunk} "
        f"({len(report['job_sizes'])} engine jobs, largest {max(report['job_sizes'])} frames); "
        f"error {report['error']!r}; results of the wrong size: {report['bad_results']}"
    )
    print(f"plugin held at most {report['max_outstanding_frames']} keyframes read but not inserted")
    print("\n| keyframes inserted | client RSS (MiB) | server RSS (MiB) |")
    print("|---:|---:|---:|")
    for row in by_tenths(report):
        print(f"| {row['frames_inserted']} | {row['client_mib']} | {row['server_mib']} |")
    print(
        f"\npeak RSS (VmHWM): client {report['client_peak_kib'] // mib} MiB, server "
        f"{report['server_peak_kib'] // mib} MiB; holding every frame would take "
        f"{args.frames * args.width * args.height * 4 * 2 / 2**20:.0f} MiB"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if report["inserted"] == args.frames and not report["error"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
