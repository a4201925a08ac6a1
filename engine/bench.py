"""``inkhue bench``: where a frame's time goes, at several sizes, with and without hints.

For each model and frame size it times the three stages of the pipeline
(``prepare_frame``, the model, ``finish_frame``), with no hints and with ``hints``
painted dots; the model alone on the same input in ONNX Runtime and, when the training
package (torch) is installed, in torch eager on the same weights (the bundled base
checkpoint the bundled model was exported from; a parity check says whether they are
the same weights); the sequence throughput of ``batch.colorize_many`` (read, colorize,
carry, write PNG files) against the per-frame bound (``colorize_frame`` in a loop on
frames already in memory); the peak memory of each configuration (resident set size
sampled every few ms, above the process's size before it); and the providers and
thread settings that ran. A speed report, not a pass/fail test: the targets of
docs/PERFORMANCE.md are printed beside the figures.

Frames are synthetic cartoons (flat shaded shapes with dark outlines; line art:
outlines only) unless a frame file is given; either is scaled to each size (to the
height, then mirror-tiled to the width, so a wide frame holds several figures).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inkhue_engine.errors import InputError

DEFAULT_SIZES = ((512, 512), (1080, 1920), (2160, 3840))
DEFAULT_HINTS = (0, 10)
#: Module of the training package that times torch eager (imported only if present,
#: like the training commands of the CLI: the engine never needs torch).
EAGER_MODULE = "inkhue_training.bench_eager"
#: Targets of issue 11 (docs/PERFORMANCE.md), printed beside the figures.
TARGET_NO_HINTS = 4.0  # end to end / model alone, at 1080p
TARGET_HINTS = 5.0
TARGET_HINT_COST = 0.2  # what hints add end to end, at most
TARGET_SEQUENCE = 0.9  # sequence throughput / per-frame bound
TARGET_ORT_VS_TORCH = 1.3


@dataclass(frozen=True)
class BenchConfig:
    """What ``run_bench`` measures. Sizes are (height, width)."""

    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    hints: tuple[int, ...] = DEFAULT_HINTS
    runs: int = 5
    warmup: int = 1
    sequence: int = 12  #: frames of the throughput run (0: none)
    sequence_size: tuple[int, int] = (1080, 1920)
    torch: bool = True  #: time torch eager when the training package is installed
    frame: Path | None = None  #: a frame file instead of the synthetic cartoon

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0 or self.sequence < 0:
            raise InputError("bench: --runs must be >= 1, --warmup and --sequence >= 0")
        for h, w in (*self.sizes, self.sequence_size):
            if h < 1 or w < 1:
                raise InputError(f"bench: size {w}x{h} is empty: give WIDTHxHEIGHT, e.g. 1920x1080")
        if any(n < 0 for n in self.hints):
            raise InputError("bench: hint counts must be 0 or more")


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """'512x512,1920x1080' (WIDTHxHEIGHT) -> ((512, 512), (1080, 1920)) as (h, w)."""
    sizes = []
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().strip().split("x"))
        except ValueError:
            raise InputError(
                f"bench: size {part.strip()!r} is not WIDTHxHEIGHT (e.g. 1920x1080)"
            ) from None
        sizes.append((h, w))
    return tuple(sizes)


# --------------------------------------------------------------------------- frames


def cartoon_frame(task: str, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A synthetic uint8 gray cartoon frame: shaded flat shapes with dark outlines on light
    paper (grayscale), or the outlines alone on white (line art)."""
    rng = np.random.default_rng(seed)
    lineart = task == "lineart"
    img = np.full((h, w), 255 if lineart else 232, np.uint8)
    scale = max(1, min(h, w))
    line = max(1, scale // 300)
    for _ in range(max(8, (h * w) // 40_000)):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        axes = (
            int(rng.integers(scale // 30 + 1, scale // 6 + 2)),
            int(rng.integers(scale // 30 + 1, scale // 6 + 2)),
        )
        angle = float(rng.uniform(0, 180))
        if not lineart:
            shade = int(rng.integers(40, 220))
            cv2.ellipse(img, (cx, cy), axes, angle, 0, 360, shade, -1, cv2.LINE_AA)
        cv2.ellipse(img, (cx, cy), axes, angle, 0, 360, 10, line, cv2.LINE_AA)
    if not lineart:  # soft shading inside the shapes, as painted cels have
        ramp = np.linspace(-12, 12, w, dtype=np.float32)[None, :]
        img = np.clip(img.astype(np.float32) + ramp, 0, 255).astype(np.uint8)
    return img


def fit_frame(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """``img`` scaled to ``h`` lines (INTER_AREA down, INTER_CUBIC up) and mirror-tiled
    (centred) or cropped to ``w`` columns."""
    ih, iw = img.shape[:2]
    nw = max(1, round(iw * h / ih))
    interp = cv2.INTER_AREA if h < ih else cv2.INTER_CUBIC
    up = cv2.resize(img, (nw, h), interpolation=interp)
    if up.ndim < img.ndim:
        up = up[..., None]
    tiles = [up if i % 2 == 0 else up[:, ::-1] for i in range(-(-w // nw) + 2)]
    wide = np.concatenate(tiles, axis=1)
    x0 = (wide.shape[1] - w) // 2
    return np.ascontiguousarray(wide[:, x0 : x0 + w])


def dot_hints(frame: np.ndarray, n: int, seed: int = 0) -> np.ndarray | None:
    """An RGBA uint8 hint layer with ``n`` painted 5x5 dots of random colors (None for 0),
    placed off the darkest pixels (lines) where the frame has any."""
    if n <= 0:
        return None
    rng = np.random.default_rng(seed)
    h, w = frame.shape[:2]
    gray = frame if frame.ndim == 2 else frame[..., 0]
    ys, xs = np.nonzero(gray > np.percentile(gray, 10))
    if ys.size == 0:
        ys, xs = np.nonzero(np.ones((h, w), bool))
    hints = np.zeros((h, w, 4), np.uint8)
    for i in rng.integers(0, ys.size, n):
        y, x = int(ys[i]), int(xs[i])
        hints[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = (*rng.integers(0, 256, 3), 255)
    return hints


# --------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    """Resident set size now (Linux /proc; elsewhere the peak so far, a coarser bound)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class PeakMemory:
    """Context manager: the peak RSS above the RSS at entry, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.base = self.peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def above_mib(self) -> float:
        return (self.peak - self.base) / 2**20

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


# --------------------------------------------------------------------------- timing


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def time_stages(
    model: Any, frame: np.ndarray, hints: np.ndarray | None, options: Any, runs: int, warmup: int
) -> dict[str, Any]:
    """ms of prepare / model / finish / total over ``runs`` calls (after ``warmup``),
    the model input shape and the peak memory (MiB above the start) of the timed calls."""
    return time_hint_layers(model, frame, [hints], options, runs, warmup)[0]


def time_hint_layers(
    model: Any,
    frame: np.ndarray,
    layers: Sequence[np.ndarray | None],
    options: Any,
    runs: int,
    warmup: int,
) -> list[dict[str, Any]]:
    """time_stages of ``frame`` with each hint layer, the layers' calls interleaved (run 1
    of every layer, then run 2, ...): on a shared machine the load drifts within seconds,
    and the cost of hints is a ratio of two of these figures, so they are measured in
    the same seconds. The peak memory of a layer is the highest of its calls."""
    from inkhue_engine.pipeline import finish_frame, prepare_frame, run_prepared

    parts = [{"prepare": [], "model": [], "finish": [], "total": []} for _ in layers]
    shapes: list[tuple[int, ...]] = [() for _ in layers]
    peaks = [(0.0, 0.0) for _ in layers]  # (peak RSS, peak above the start) MiB
    for _ in range(warmup):
        for hints in layers:
            p = prepare_frame(frame, model.info, hints, options)
            finish_frame(p, run_prepared(model, [p])[0])
    for _ in range(runs):
        for k, hints in enumerate(layers):
            with PeakMemory() as mem:
                t0 = time.perf_counter()
                p = prepare_frame(frame, model.info, hints, options)
                t1 = time.perf_counter()
                pred = run_prepared(model, [p])[0]
                t2 = time.perf_counter()
                out = finish_frame(p, pred)
                t3 = time.perf_counter()
                shapes[k] = (1, *p.input.shape)  # one frame per model call
                del p, pred, out
            peaks[k] = (max(peaks[k][0], mem.peak_mib), max(peaks[k][1], mem.above_mib))
            for key, dt in (
                ("prepare", t1 - t0),
                ("model", t2 - t1),
                ("finish", t3 - t2),
                ("total", t3 - t0),
            ):
                parts[k][key].append(dt * 1000.0)
    rows = []
    for k in range(len(layers)):
        result: dict[str, Any] = {key: _stats(v) for key, v in parts[k].items()}
        result["total_runs"] = [round(v, 3) for v in parts[k]["total"]]  # in run order
        result["model_input"] = list(shapes[k])
        # the process's peak RSS during the timed calls, and how far above its RSS before
        # them (memory freed by earlier calls is reused, so it can read ~0)
        result["peak_rss_mib"] = round(peaks[k][0], 1)
        result["peak_above_start_mib"] = round(peaks[k][1], 1)
        rows.append(result)
    return rows


def hint_cost(with_hints: Sequence[float], without: Sequence[float]) -> float:
    """What hints add: the median over paired runs (measured back to back) of
    with / without - 1."""
    return statistics.median(a / b for a, b in zip(with_hints, without, strict=True)) - 1.0


def time_model(model: Any, shape: Sequence[int], runs: int, warmup: int) -> dict[str, float]:
    """ms of the ONNX Runtime session alone on a random input of ``shape`` [N, 4, H, W]."""
    x = _model_input(shape)
    for _ in range(warmup):
        model.run(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.run(x)
        times.append((time.perf_counter() - t0) * 1000.0)
    return _stats(times)


def _model_input(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """A plausible model input: L 0..100, a few hinted pixels (the contract's ranges)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(tuple(shape), np.float32)
    x[:, 0] = rng.uniform(0, 100, x[:, 0].shape)
    mask = rng.random(x[:, 0].shape) < 0.02
    x[:, 1] = np.where(mask, rng.uniform(-60, 60, mask.shape), 0)
    x[:, 2] = np.where(mask, rng.uniform(-60, 60, mask.shape), 0)
    x[:, 3] = mask
    return x


def eager_timer() -> Callable[..., dict[str, Any]] | None:
    """``time_eager`` of the training package, or None when it (or torch) is missing."""
    # The training package is in every install (setup.cfg) and imports torch only inside
    # time_eager: without the training extra, torch is what is missing.
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        module = importlib.import_module(EAGER_MODULE)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("inkhue_training", "torch")):
            raise
        return None
    return module.time_eager


def sequence_throughput(
    model: Any, frames: Sequence[np.ndarray], options: Any, batch_size: int = 4, repeats: int = 2
) -> dict[str, Any]:
    """frames/s of colorize_many over PNG files (read, colorize, carry, write) and the
    per-frame bound: colorize_frame in a loop on the same frames already in memory.

    The two alternate ``repeats`` times (the ratio of each pair is measured in the same
    seconds; the report keeps the medians). Both also report the process's CPU time per
    frame (all its threads). However well the stages overlap, the sequence needs its CPU
    time per frame x frames/s of cores: ``cores_for_target`` is what 90% of the measured
    bound takes, against the ``cores`` this process may use (shared with any other
    load), which says whether a missed target is the code's or the machine's.
    """
    from inkhue_engine import batch, frames_io
    from inkhue_engine.pipeline import colorize_frame, prepare_frame, run_prepared

    colorize_frame(frames[0], model, None, options)  # warm
    # and the batched input shape: ONNX Runtime plans each new shape on its first run
    run_prepared(model, [prepare_frame(frames[0], model.info, None, options)] * batch_size)
    bound_fps, many_fps, ratios, bound_cpu, many_cpu = [], [], [], [], []
    peak_rss = peak_above = 0.0
    with tempfile.TemporaryDirectory(prefix="inkhue-bench-") as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i, f in enumerate(frames):
            frames_io.write_image_atomic(src / f"f{i:04d}.png", f)
        sources = frames_io.expand_inputs([src])
        for r in range(max(1, repeats)):
            c0, t0 = time.process_time(), time.perf_counter()
            for f in frames:
                colorize_frame(f, model, None, options)
            bound_s, bound_c = time.perf_counter() - t0, time.process_time() - c0
            c0 = time.process_time()
            with PeakMemory() as mem:
                res = batch.colorize_many(
                    sources, Path(tmp) / f"out{r}", model, options, batch_size=batch_size,
                    progress=False,
                )  # fmt: skip
            many_c = time.process_time() - c0
            peak_rss, peak_above = max(peak_rss, mem.peak_mib), max(peak_above, mem.above_mib)
            bound_fps.append(len(frames) / bound_s)
            many_fps.append(res.fps)
            ratios.append(res.fps / bound_fps[-1])
            bound_cpu.append(bound_c / len(frames) * 1000.0)
            many_cpu.append(many_c / len(frames) * 1000.0)
    cores = usable_cores()
    bound, many_ms = statistics.median(bound_fps), statistics.median(many_cpu)
    return {
        "frames": len(frames),
        "size": [int(frames[0].shape[0]), int(frames[0].shape[1])],
        "batch_size": batch_size,
        "repeats": len(ratios),
        "frames_per_s": statistics.median(many_fps),
        "bound_frames_per_s": bound,
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "bound_cpu_ms_per_frame": statistics.median(bound_cpu),
        "cpu_ms_per_frame": many_ms,
        "cores": cores,
        "cores_for_target": TARGET_SEQUENCE * bound * many_ms / 1000.0,
        "peak_rss_mib": round(peak_rss, 1),
        "peak_above_start_mib": round(peak_above, 1),
    }


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def moving_sequence(first: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` frames: ``first`` with a band that slides a little each frame (most pixels
    static, as in animation; exercises the color carrying of colorize_many)."""
    frames = []
    h, w = first.shape[:2]
    band = max(1, w // 8)
    for i in range(n):
        f = first.copy()
        x = (i * max(1, w // 50)) % max(1, w - band)
        f[:, x : x + band] = np.roll(first[:, x : x + band], i + 1, axis=0)
        frames.append(f)
    return frames


# --------------------------------------------------------------------------- settings


def runtime_settings(model: Any) -> dict[str, Any]:
    """Providers, thread settings and versions that the figures were measured with."""
    import onnxruntime

    so = model._session.get_session_options()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "providers": list(model.providers),
        "onnxruntime": onnxruntime.__version__,
        "ort_intra_op_threads": so.intra_op_num_threads,  # 0 = ORT default
        "ort_inter_op_threads": so.inter_op_num_threads,
        "ort_execution_mode": so.execution_mode.name,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average": [round(v, 2) for v in load] if load else None,
    }


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------- the run


@dataclass
class BenchReport:
    """Everything run_bench measured (``as_dict`` is the --json document)."""

    models: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "config": self.config,
            "settings": self.settings,
            "models": self.models,
        }


def run_bench(
    models: Sequence[Any],
    config: BenchConfig,
    options: Any = None,
    log: Callable[[str], None] | None = None,
) -> BenchReport:
    """Measure ``models`` (loaded model.Model objects) as ``config`` says."""
    from inkhue_engine import frames_io
    from inkhue_engine.pipeline import ColorizeOptions

    options = options or ColorizeOptions()
    say = log or (lambda _msg: None)
    report = BenchReport(
        config={
            "sizes": [[h, w] for h, w in config.sizes],
            "hints": list(config.hints),
            "runs": config.runs,
            "warmup": config.warmup,
            "sequence": config.sequence,
            "sequence_size": list(config.sequence_size),
            "frame": str(config.frame) if config.frame else "synthetic cartoon",
            "detail": options.detail,
            "regions": options.regions,
            "mirror_average": options.mirror_average,
        }
    )
    source = None
    if config.frame is not None:
        source = frames_io.read_image(config.frame)
    eager = eager_timer() if config.torch else None
    for model in models:
        task = model.info.task
        entry: dict[str, Any] = {
            "name": model.info.name,
            "task": task,
            "file": str(model.info.path),
            "rows": [],
            "model_only": [],
        }
        for h, w in config.sizes:
            frame = fit_frame(source, h, w) if source is not None else cartoon_frame(task, h, w)
            say(f"{model.info.name}: {w}x{h}, {', '.join(map(str, config.hints))} hints")
            rows = time_hint_layers(
                model,
                frame,
                [dot_hints(frame, n) for n in config.hints],
                options,
                config.runs,
                config.warmup,
            )
            plain = dict(zip(config.hints, rows, strict=True)).get(0)
            for n, row in zip(config.hints, rows, strict=True):
                row.update({"size": [h, w], "hints": n})
                if plain is not None and n > 0:
                    # what the hints add end to end: the median of the ratios of runs made
                    # back to back (a burst of load hits both of a pair, not one median)
                    row["hint_cost"] = hint_cost(row["total_runs"], plain["total_runs"])
                entry["rows"].append(row)
            shape = entry["rows"][-1]["model_input"]
            mo: dict[str, Any] = {
                "size": [h, w],
                "input": shape,
                "onnxruntime": time_model(model, shape, config.runs, config.warmup),
            }
            if eager is not None:
                say(f"{model.info.name}: torch eager at {shape}")
                mo["torch"] = eager(
                    model.info.path, task, shape, runs=config.runs, warmup=config.warmup
                )
                t = mo["torch"]
                if t.get("same_weights"):
                    mo["ort_speedup"] = t["median"] / mo["onnxruntime"]["median"]
            entry["model_only"].append(mo)
        if config.sequence > 0:
            sh, sw = config.sequence_size
            first = fit_frame(source, sh, sw) if source is not None else cartoon_frame(task, sh, sw)
            say(f"{model.info.name}: sequence of {config.sequence} frames {sw}x{sh}")
            entry["sequence"] = sequence_throughput(
                model, moving_sequence(first, config.sequence), options
            )
        report.models.append(entry)
        report.settings = runtime_settings(model)
    if eager is None:
        report.settings["torch"] = "not measured: " + (
            "--no-torch" if not config.torch else "the training package (torch) is not installed"
        )
    else:
        report.settings["torch"] = "measured (inkhue_training.bench_eager)"
    return report


# --------------------------------------------------------------------------- output


def format_report(report: BenchReport) -> str:
    """The report as text tables (ms are medians of the timed runs)."""
    s = report.settings
    lines = [
        f"CPU {s.get('cpu')}, {s.get('usable_cores')} usable of {s.get('logical_cores')} "
        f"logical cores; load average {s.get('load_average')}",
        f"ONNX Runtime {s.get('onnxruntime')} on {', '.join(s.get('providers', []))}; "
        f"intra-op threads {s.get('ort_intra_op_threads')} (0 = one per physical core), "
        f"inter-op {s.get('ort_inter_op_threads')}, {s.get('ort_execution_mode')}; "
        f"OpenCV {s.get('opencv')} with {s.get('opencv_threads')} threads",
        f"frame: {report.config.get('frame')}; {report.config.get('runs')} timed runs after "
        f"{report.config.get('warmup')} warm-up; torch: {s.get('torch')}",
        f"model passes per frame: {2 if report.config.get('mirror_average') else 1} "
        f"(mirror average {'on' if report.config.get('mirror_average') else 'off'})",
    ]
    for m in report.models:
        lines += [
            "",
            f"model {m['name']!r} ({m['task']}, {m['file']})",
            f"{'size':>10} {'hints':>5} {'prepare':>8} {'model':>8} {'finish':>8} "
            f"{'total':>8} {'x model':>8} {'hints +':>8} {'RSS MiB':>8}",
        ]
        for r in m["rows"]:
            h, w = r["size"]
            ratio = r["total"]["median"] / max(r["model"]["median"], 1e-9)
            cost = f"{r['hint_cost'] * 100:+7.0f}%" if "hint_cost" in r else f"{'-':>8}"
            lines.append(
                f"{w:>5}x{h:<4} {r['hints']:>5} {r['prepare']['median']:8.1f} "
                f"{r['model']['median']:8.1f} {r['finish']['median']:8.1f} "
                f"{r['total']['median']:8.1f} {ratio:8.1f} {cost} {r['peak_rss_mib']:8.0f}"
            )
        lines.append(
            f"{'model alone':>16} {'input':>18} {'ORT ms':>8} {'torch ms':>9} {'ORT x':>6}"
        )
        for mo in m["model_only"]:
            t = mo.get("torch")
            torch_ms = f"{t['median']:9.1f}" if t and "median" in t else f"{'-':>9}"
            speed = f"{mo['ort_speedup']:6.2f}" if "ort_speedup" in mo else f"{'-':>6}"
            h, w = mo["size"]
            lines.append(
                f"{w:>11}x{h:<4} {str(mo['input']):>18} "
                f"{mo['onnxruntime']['median']:8.1f} {torch_ms} {speed}"
            )
            if t and not t.get("same_weights", True):
                lines.append(f"{'':>16} torch: {t.get('note')}")
        q = m.get("sequence")
        if q:
            lines.append(
                f"sequence {q['frames']} frames {q['size'][1]}x{q['size'][0]}: "
                f"{q['frames_per_s']:.2f} frames/s vs per-frame bound "
                f"{q['bound_frames_per_s']:.2f} ({q['ratio'] * 100:.0f}%, target "
                f">= {TARGET_SEQUENCE * 100:.0f}%; median of {q.get('repeats', 1)} "
                f"alternating runs); peak RSS {q['peak_rss_mib']:.0f} MiB"
            )
            if "cpu_ms_per_frame" in q:
                lines.append(
                    f"  CPU per frame: sequence {q['cpu_ms_per_frame']:.0f} ms, bound "
                    f"{q['bound_cpu_ms_per_frame']:.0f} ms; {TARGET_SEQUENCE * 100:.0f}% of "
                    f"this bound takes {q['cores_for_target']:.2f} cores of CPU "
                    f"(this process may use {q['cores']}, shared with the machine's load)"
                )
    lines += [
        "",
        f"targets at 1080p: total <= {TARGET_NO_HINTS:g}x the model without hints, "
        f"<= {TARGET_HINTS:g}x with 10; hints +{TARGET_HINT_COST * 100:.0f}% at most "
        f"('hints +': total against 0 hints, measured interleaved); ORT >= "
        f"{TARGET_ORT_VS_TORCH:g}x torch eager",
    ]
    return "\n".join(lines)


def write_json(report: BenchReport, path: str | os.PathLike) -> None:
    """The report as JSON, written atomically."""
    from inkhue_engine.frames_io import write_bytes_atomic

    data = json.dumps(report.as_dict(), indent=2, default=float).encode()
    write_bytes_atomic(path, data + b"\n")


def plot_svg(report: BenchReport) -> str:
    """Stacked bars of the median stage times (prepare / model / finish), one panel per
    model, one bar per size and hint count, as a standalone SVG document (no plotting
    library: matplotlib is not an engine dependency)."""
    colors = {"prepare": "#6a9fd8", "model": "#e0a030", "finish": "#70b070"}
    bar_w, gap, panel_h, top, left = 34, 14, 260, 40, 60
    panels = []
    x0 = 0
    for m in report.models:
        rows = m["rows"]
        width = left + len(rows) * (bar_w + gap) + 20
        peak = max((r["total"]["median"] for r in rows), default=1.0) or 1.0
        scale = panel_h / peak
        parts = [
            f'<g transform="translate({x0},0)">',
            f'<text x="{left}" y="{top - 18}" font-size="13">{_esc(m["name"])} '
            f"({m['task']}): ms per frame, median</text>",
        ]
        for tick in np.linspace(0, peak, 5):
            y = top + panel_h - tick * scale
            parts.append(
                f'<line x1="{left - 4}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            )
            parts.append(
                f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" '
                f'text-anchor="end">{tick:.0f}</text>'
            )
        for i, r in enumerate(rows):
            x = left + i * (bar_w + gap)
            y = top + panel_h
            for part in ("prepare", "model", "finish"):
                hgt = r[part]["median"] * scale
                y -= hgt
                parts.append(
                    f'<rect x="{x}" y="{y:.1f}" width="{bar_w}" height="{hgt:.1f}" '
                    f'fill="{colors[part]}"><title>{part} '
                    f"{r[part]['median']:.1f} ms</title></rect>"
                )
            h, w = r["size"]
            parts.append(
                f'<text x="{x + bar_w / 2}" y="{top + panel_h + 14}" font-size="9" '
                f'text-anchor="middle">{w}x{h}</text>'
            )
            parts.append(
                f'<text x="{x + bar_w / 2}" y="{top + panel_h + 26}" font-size="9" '
                f'text-anchor="middle">{r["hints"]} hints</text>'
            )
        parts.append("</g>")
        panels.append("\n".join(parts))
        x0 += width
    legend_y = top + panel_h + 48
    legend = [
        f'<rect x="{left + i * 90}" y="{legend_y - 10}" width="12" height="12" '
        f'fill="{c}"/><text x="{left + i * 90 + 16}" y="{legend_y}" font-size="11">'
        f"{k}</text>"
        for i, (k, c) in enumerate(colors.items())
    ]
    s = report.settings
    note = (
        f"inkhue bench: {s.get('usable_cores')} cores ({_esc(str(s.get('cpu')))}), "
        f"load average {s.get('load_average')}, {', '.join(s.get('providers', []))}"
    )
    total_h = legend_y + 30
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(x0, 400)}" height="{total_h}" '
            'font-family="sans-serif">',
            '<rect width="100%" height="100%" fill="white"/>',
            *panels,
            *legend,
            f'<text x="{left}" y="{legend_y + 22}" font-size="10" fill="#555">{note}</text>',
            "</svg>",
            "",
        ]
    )


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_plot(report: BenchReport, path: str | os.PathLike) -> None:
    """plot_svg written atomically (the file name should end in .svg)."""
    from inkhue_engine.frames_io import write_bytes_atomic

    write_bytes_atomic(path, plot_svg(report).encode())
