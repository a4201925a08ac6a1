"""Batch colorization of files, folders, image sequences and videos.

``colorize_many`` runs three stages that overlap, joined by bounded queues:

1. a reader thread decodes frames, loads their hints and prepares them
   (pipeline.prepare_frame) in a small thread pool, one *group* of ``batch_size``
   frames at a time;
2. the calling thread runs the model on each group (pipeline.run_prepared, which
   puts frames of one working size into one model call) and hands every frame to a
   worker pool that finishes it (pipeline.finish_frame);
3. a sequencer thread takes the finished frames in order, carries colors from the
   previous output where the input did not change (``SequenceCarry``), and has the
   pool write each output atomically (or appends it to the output video).

Resuming: an output file that exists is complete (atomic writes), so a re-run skips
it. The result of a resumed run is byte-identical to an uninterrupted one because
nothing depends on where a run started:

- groups are aligned on the frame index (frames ``[g*B, (g+1)*B)``), and a group
  with any frame left to do is run whole, so every frame meets the model in the same
  batch as before (a model's numbers may depend on the batch it runs in);
- the carry state of frame i is rebuilt from files: its reference input is a
  function of the inputs only (replayed from the sequence's first frame), and the
  previous output is read back from its finished file, which holds exactly the
  pixels the sequencer kept (``frames_io.stored_pixels``).

A video output is written whole or not at all (temp file + rename): it is skipped
when it exists, and redone entirely otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inkhue_engine import frames_io as fio
from inkhue_engine.color import DTYPE_SCALE, to_float01
from inkhue_engine.errors import ForbiddenError, InkHueError, InputError, OutputError
from inkhue_engine.frames_io import Source

#: Output file names of video frames written to a folder (0-based frame numbers).
VIDEO_FRAME_NAME = "frame_{:05d}.png"
#: Records the settings of the run that wrote an output folder (resume checks them).
MANIFEST_NAME = ".inkhue-batch.json"

_END = object()


# --------------------------------------------------------------------------- carry
@dataclass(frozen=True)
class CarrySettings:
    """How colors are carried from one output frame to the next.

    A pixel keeps the previous output when its input is within ``tolerance`` (float
    0..1 per channel) of the *reference* input, the input it had when its color was
    last computed (so a slow fade cannot drift further than ``tolerance``), at least
    ``erode_px`` away from any pixel that changed (moving edges are recomputed), and
    when no channel of the new output differs from the previous one by more than
    ``max_change`` (0..1 units: 0.06 is about 15 levels of 255). The last test keeps
    a moved region from inheriting a stale color where its pixels match the old
    frame's (white fill over white paper): flicker is a small change, a new region a
    large one. (A plain channel difference rather than CIEDE2000: this runs on every
    pixel of every frame in the one sequential stage of a batch.)
    """

    enabled: bool = True
    tolerance: float = 3.0 / 255.0
    erode_px: int = 2
    max_change: float = 0.06


class SequenceCarry:
    """Per-sequence carry state: ``observe`` each input in order, ``apply`` to outputs.

    ``observe`` depends on the inputs only, so the state of any frame can be rebuilt
    by replaying the earlier inputs; ``apply`` needs the previous output as stored.
    """

    def __init__(self, settings: CarrySettings) -> None:
        self.settings = settings
        self._ref: np.ndarray | None = None
        self._key: tuple | None = None

    def observe(self, frame: np.ndarray) -> np.ndarray | None:
        """Take the next input; return the bool HxW mask of pixels that may be carried.

        None for a sequence's first frame (or one whose size or type changed).
        """
        levels = _uint8_tolerance(self.settings.tolerance) if frame.dtype == np.uint8 else None
        # 8-bit frames are compared as they are, by a rule found from all 65536 pairs of
        # values (the same mask as in float, without a float copy of every frame)
        cur = frame.copy() if levels is not None else to_float01(frame)
        key = (frame.shape, frame.dtype.str)
        if self._ref is None or key != self._key:
            self._ref, self._key = cur, key
            return None
        if levels is not None:
            static = _channel_min(_uint8_within(cur, self._ref, levels))
        else:
            diff = _channel_max(cv2.absdiff(cur, self._ref))
            static = (diff <= self.settings.tolerance).astype(np.uint8)
        px = self.settings.erode_px
        if px > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
            static = cv2.erode(static, kernel, borderType=cv2.BORDER_REPLICATE)
        # the reference moves only where a pixel is recomputed: drift stays within tolerance
        self._ref = cv2.copyTo(self._ref, static, cur.copy())
        return static.astype(bool)

    def apply(
        self, fresh: np.ndarray, static: np.ndarray | None, previous: np.ndarray | None
    ) -> np.ndarray:
        """``fresh`` with the pixels of ``previous`` where ``static`` allows it (same shape)."""
        if (
            static is None
            or previous is None
            or previous.shape != fresh.shape
            or previous.dtype != fresh.dtype
            or not static.any()
        ):
            return fresh
        limit = self.settings.max_change * DTYPE_SCALE[fresh.dtype]  # the frame's own units
        if fresh.dtype != np.float32:
            limit = float(math.floor(limit))  # integer differences: the same test
        # no channel changed by more than the limit: one cv2.inRange over all channels
        # (the maximum over channels is <= limit exactly when every channel is)
        low = (0.0,) * (1 if fresh.ndim == 2 else fresh.shape[2])
        small = cv2.inRange(cv2.absdiff(previous, fresh), low, (limit,) * len(low))
        mask = cv2.bitwise_and(static.view(np.uint8), small)
        # (cv2: ~20x faster than np.where on a 1 MPx frame)
        return cv2.copyTo(previous, mask, fresh.copy())


def colorize_sequence(
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
    colorize: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    settings: CarrySettings,
) -> Iterator[np.ndarray]:
    """Colorize the consecutive (frame, hints) of one sequence in order with
    ``colorize(frame, hints)``, carrying colors from the previous result where the input
    did not change (``SequenceCarry``). The server's frames jobs run this; colorize_many's
    sequencer does the same per frame, around its resume and write logic."""
    state = SequenceCarry(settings)
    previous: np.ndarray | None = None
    for frame, hints in frames:
        static = state.observe(frame) if settings.enabled else None
        fresh = colorize(frame, hints)
        previous = state.apply(fresh, static, previous) if settings.enabled else fresh
        yield previous


@functools.lru_cache(maxsize=16)
def _uint8_tolerance(tolerance: float) -> tuple[int, int, np.ndarray] | None:
    """SequenceCarry.observe's float test on 8-bit values as integer rules: (full, edge,
    lut): two values are within ``tolerance`` (float01 difference, as observe computes
    it) when they differ by at most ``full`` levels, or by exactly ``edge`` levels and
    ``lut[smaller value]`` is set (float rounding makes that one difference go either
    way: 3/255 holds for 474 of the 506 pairs 3 apart). Found by trying all 65536 pairs;
    None when the float test is not of that form (then observe works in float)."""
    f01 = to_float01(np.arange(256, dtype=np.uint8))
    a, b = np.meshgrid(f01, f01, indexing="ij")
    within = cv2.absdiff(a, b) <= tolerance
    values = np.arange(256)
    levels = np.abs(np.subtract.outer(values, values))
    smaller = np.minimum.outer(values, values)
    complete = [d for d in range(256) if within[levels == d].all()]
    full = -1
    while full + 1 in complete:
        full += 1
    partial = [d for d in range(full + 1, 256) if within[levels == d].any()]
    if full < 0 or len(partial) > 1:
        return None
    edge = partial[0] if partial else 256  # 256: no difference is one
    lut = np.zeros(256, np.uint8)
    if partial:
        sel = (levels == edge) & within
        lut[smaller[sel]] = 255
        # the rule must say exactly what the float test says, for every pair
        rebuilt = (levels <= full) | ((levels == edge) & (lut[smaller] > 0))
        if not np.array_equal(rebuilt, within):
            return None
    return full, edge, lut


def _uint8_within(a: np.ndarray, b: np.ndarray, rule: tuple[int, int, np.ndarray]) -> np.ndarray:
    """255 where 8-bit ``a`` and ``b`` (same shape) are within the tolerance of ``rule``
    (_uint8_tolerance), per channel; 0 elsewhere."""
    full, edge, lut = rule
    shape = a.shape
    a, b = a.reshape(shape[0], -1), b.reshape(shape[0], -1)  # cv2.compare: one channel
    diff = cv2.absdiff(a, b)
    within = cv2.compare(diff, full, cv2.CMP_LE)
    if edge < 256:
        at_edge = cv2.bitwise_and(cv2.compare(diff, edge, cv2.CMP_EQ), cv2.LUT(cv2.min(a, b), lut))
        within = cv2.bitwise_or(within, at_edge)
    return within.reshape(shape)


def _channel_min(img: np.ndarray) -> np.ndarray:
    """Per-pixel minimum over channels (all channels within: a pixel is within)."""
    if img.ndim == 2:
        return img
    planes = cv2.split(img)
    out = planes[0]
    for p in planes[1:]:
        out = cv2.min(out, p)
    return out


def _channel_max(img: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over channels (cv2: numpy's max(axis=2) is ~20x slower)."""
    if img.ndim == 2:
        return img
    planes = cv2.split(img)
    out = planes[0]
    for p in planes[1:]:
        out = cv2.max(out, p)
    return out


# --------------------------------------------------------------------------- planning
@dataclass
class FrameJob:
    """One frame of a run."""

    index: int  # position in the run (all sources, in order)
    source: Source
    frame_no: int  # frame number within a video, 0 for an image
    name: str  # hints are matched by it: the input's file name, or frame_00012 in a video
    output: Path | None  # None: the frame goes into the output video
    sequence: int  # carry happens between frames of one sequence only
    done: bool = False  # its output already exists (skipped)
    frame: np.ndarray | None = None
    prepared: Any = None
    error: str | None = None  # why its input could not be used (the run went on)


@dataclass
class BatchResult:
    """What a run did."""

    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    output: Path | None = None
    outputs: list[Path] = field(default_factory=list)
    #: Frames whose input could not be used (without fail_fast): one line each, naming
    #: the file; the other frames were written.
    failed: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class OutputPlan:
    """Where each source's frames go."""

    mode: str  # 'file' | 'folder' | 'video'
    out: Path
    image_outputs: dict[int, Path]  # source index -> output file (image sources)
    video_folders: dict[int, Path]  # source index -> folder of its frames (video sources)

    def frame_output(self, source_index: int, frame_no: int) -> Path | None:
        if self.mode == "video":
            return None
        if source_index in self.image_outputs:
            return self.image_outputs[source_index]
        return self.video_folders[source_index] / VIDEO_FRAME_NAME.format(frame_no)


def plan_outputs(sources: Sequence[Source], out: str | os.PathLike[str]) -> OutputPlan:
    """Decide output paths, and refuse bad plans before any work is done.

    ``out`` is a video file when its extension is a video's (every frame of every
    source goes into it); an image file when there is one image input and ``out``
    has an image extension; a folder otherwise (created if needed): image inputs
    keep their file names (formats that cannot be written become .png), a video's
    frames become ``frame_00000.png``... (in a subfolder named after the video when
    there are several sources). Raises
    OutputError when an output would overwrite an input, and InputError when two
    inputs would write the same output.
    """
    out = Path(out)
    inputs = fio.InputSet(s.path for s in sources)
    suffix = out.suffix.lower()
    if suffix in fio.VIDEO_EXTS and not out.is_dir():
        fio.check_not_input(out, inputs)
        return OutputPlan("video", out, {}, {})
    if out.is_file() or (suffix in fio.IMAGE_EXTS and not out.is_dir()):
        if len(sources) != 1 or sources[0].is_video:
            what = "a video" if sources[0].is_video else f"{len(sources)} inputs"
            raise OutputError(
                f"{out}: is an image file but the input is {what}: give a folder "
                "(or a video file) as the output"
            )
        if suffix not in fio.WRITE_DTYPES:
            raise OutputError(
                f"{out}: cannot write '{suffix}' images: use one of "
                f"{', '.join(sorted(fio.WRITE_DTYPES))}"
            )
        fio.check_not_input(out, inputs)
        return OutputPlan("file", out, {0: out}, {})
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder: choose a folder for the outputs")
    image_outputs: dict[int, Path] = {}
    video_folders: dict[int, Path] = {}
    taken: dict[Path, Path] = {}
    for i, src in enumerate(sources):
        if src.is_video:
            folder = out if len(sources) == 1 else out / src.path.stem
            if folder in taken:
                raise InputError(
                    f"{src.path} and {taken[folder]} would write frames to the same folder "
                    f"{folder}: rename one of them"
                )
            taken[folder] = src.path
            video_folders[i] = folder
            continue
        target = out / src.path.name
        if target.suffix.lower() not in fio.WRITE_DTYPES:  # e.g. .jp2, .ppm: written as PNG
            target = target.with_suffix(".png")
        if target in taken:
            raise InputError(
                f"{src.path} and {taken[target]} would both be written to {target}: "
                "colorize them into separate folders"
            )
        fio.check_not_input(target, inputs)
        taken[target] = src.path
        image_outputs[i] = target
    return OutputPlan("folder", out, image_outputs, video_folders)


def _jobs(sources: Sequence[Source], plan: OutputPlan, overwrite: bool) -> Iterator[FrameJob]:
    """Every frame job of the run, in order, with ``done`` set (frames not read yet)."""
    index, sequence = 0, 0
    prev_video = True
    for si, src in enumerate(sources):
        if src.is_video:
            sequence += 1
            prev_video = True
            for no in range(fio.count_video_frames(src.path)):
                out = plan.frame_output(si, no)
                name = VIDEO_FRAME_NAME.format(no)
                yield FrameJob(index, src, no, name, out, sequence, done=_done(out, overwrite))
                index += 1
        else:
            if prev_video:
                sequence += 1
                prev_video = False
            out = plan.frame_output(si, 0)
            yield FrameJob(index, src, 0, src.path.name, out, sequence, done=_done(out, overwrite))
            index += 1


def _done(out: Path | None, overwrite: bool) -> bool:
    return out is not None and not overwrite and out.is_file()


# --------------------------------------------------------------------------- hints
class HintSource:
    """Hints of each frame: one hint image for all frames, or a folder of per-frame ones.

    A per-frame hint image is matched by file stem to the frame's name (an image
    input's file name, or ``frame_00012`` for a video's frames); frames without one
    get no hints. A hint image is RGBA: painted (alpha > 0) pixels are hints.

    ``root`` (the server's --root): every hint file must lie under it once symlinks are
    resolved, checked when the folder is scanned and again when a file is read (a link
    may be swapped in between); ForbiddenError otherwise.
    """

    def __init__(
        self,
        hints: str | os.PathLike[str] | None,
        names: Sequence[str] = (),
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(hints) if hints is not None else None
        self.root = Path(root).resolve() if root is not None else None
        self._single: np.ndarray | None = None
        self._by_stem: dict[str, Path] = {}
        if self.path is None:
            return
        if self.path.is_dir():
            for p in self.path.iterdir():
                if (
                    p.is_file()
                    and not p.name.startswith(".")
                    and p.suffix.lower() in fio.IMAGE_EXTS
                ):
                    self._check_root(p)
                    self._by_stem[p.stem] = p
            stems = {Path(n).stem for n in names}
            if names and not stems & set(self._by_stem):
                raise InputError(
                    f"{self.path}: no hint image is named like an input frame "
                    f"(e.g. {sorted(stems)[0]}.png): name each hint image after its frame"
                )
        elif self.path.is_file():
            self._single = self._load(self.path)
        else:
            raise InputError(f"{self.path}: hint file or folder not found")

    def files(self) -> list[Path]:
        """The hint image files this source reads (outputs must not overwrite them)."""
        if self._single is not None and self.path is not None:
            return [self.path]
        return list(self._by_stem.values())

    def _check_root(self, path: Path) -> None:
        check_under_root(path, self.root, "hints")

    def _load(self, path: Path) -> np.ndarray:
        self._check_root(path)
        img = fio.read_image(path)
        if img.ndim != 3 or img.shape[2] != 4:
            raise InputError(
                f"{path}: a hint image needs transparency (RGBA): paint hints on a "
                "transparent layer and save it as PNG"
            )
        return img

    def for_frame(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The RGBA hint image of the frame called ``name`` of ``shape``, or None."""
        if self.path is None:
            return None
        if self._single is not None:
            hints, where = self._single, self.path
        else:
            where = self._by_stem.get(Path(name).stem)
            if where is None:
                return None
            hints = self._load(where)
        if hints.shape[:2] != tuple(shape[:2]):
            h, w = shape[:2]
            hh, hw = hints.shape[:2]
            raise InputError(
                f"{where}: the hint image is {hw}x{hh} but frame {name} is {w}x{h}: "
                "paint the hints at the frame's size"
            )
        return hints


# --------------------------------------------------------------------------- manifest
def _model_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def run_settings(model: Any, options: Any, hints: Any, carry: CarrySettings) -> dict[str, Any]:
    """What decides the pixels of a run (recorded next to a folder's outputs).

    The batch size is left out on purpose: it may move a value by a rounding step,
    which is no reason to refuse a resume.
    """
    opts = asdict(options) if hasattr(options, "__dataclass_fields__") else dict(vars(options))
    return {
        "model": model.info.name,
        "model_sha256": _model_digest(Path(model.info.path)),
        "options": json.loads(json.dumps(opts, default=str)),
        "hints": str(Path(hints).resolve()) if hints is not None else None,
        "carry": asdict(carry),
    }


def _settings_key(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"runs": {}, "files": {}}
    if not isinstance(data, dict):
        return {"runs": {}, "files": {}}
    return {"runs": dict(data.get("runs") or {}), "files": dict(data.get("files") or {})}


def _update_manifest(
    plan: OutputPlan, jobs: Sequence[FrameJob], settings: dict[str, Any], overwrite: bool
) -> tuple[Path, bytes] | None:
    """Check the settings of a folder's finished outputs; return the updated record.

    The record (MANIFEST_NAME in the output folder) maps each output file to the
    settings of the run that writes it. Resuming over outputs written with other
    settings (model, options, hints, carry) is refused unless ``overwrite``; outputs
    with no record (written by something else) are taken as they are. Returns
    (path, new content) for the caller to write once the run is known to start.
    """
    if plan.mode != "folder":
        return None
    path = plan.out / MANIFEST_NAME
    record = _read_manifest(path) if path.is_file() else {"runs": {}, "files": {}}
    key = _settings_key(settings)
    for job in jobs:
        if job.done and job.output is not None:
            name = job.output.relative_to(plan.out).as_posix()
            old = record["files"].get(name)
            if old is not None and old != key:
                was = record["runs"].get(old)
                changed = sorted(
                    k for k in settings if not isinstance(was, dict) or was.get(k) != settings[k]
                )
                raise OutputError(
                    f"{job.output}: was written with other settings "
                    f"({', '.join(changed) or 'unknown'}): use --overwrite to redo it, "
                    "or another output folder"
                )
    record["runs"][key] = settings
    for job in jobs:
        if not job.done and job.output is not None:
            if job.output.exists():
                # --overwrite: the file keeps the old settings' pixels until this run
                # rewrites it (record_written); an interrupted run must not claim it
                continue
            record["files"][job.output.relative_to(plan.out).as_posix()] = key
    return path, _encoded(record, keep=key)


def _encoded(record: dict[str, Any], keep: str | None = None) -> bytes:
    """The record as written: the runs no output refers to (other than ``keep``) dropped."""
    used = set(record["files"].values()) | ({keep} if keep is not None else set())
    record["runs"] = {k: v for k, v in record["runs"].items() if k in used}
    return json.dumps(record, indent=1, sort_keys=True).encode()


def record_written(plan: OutputPlan, outputs: Sequence[Path], settings: dict[str, Any]) -> None:
    """Record ``outputs`` (written by this run) under ``settings`` in the folder's record."""
    if plan.mode != "folder" or not outputs:
        return
    path = plan.out / MANIFEST_NAME
    record = _read_manifest(path)
    key = _settings_key(settings)
    record["runs"][key] = settings
    for out in outputs:
        record["files"][out.relative_to(plan.out).as_posix()] = key
    fio.write_bytes_atomic(path, _encoded(record))


def check_under_root(path: Path, root: Path | None, field: str) -> None:
    """ForbiddenError when ``path`` resolves outside ``root`` (a resolved folder; None: no
    root, the CLI). The server checks its paths when a job is planned and each file again
    when it is read: a link may be swapped in between."""
    if root is not None and not Path(path).resolve().is_relative_to(root):
        name = Path(path).name
        raise ForbiddenError(f"{field}: {name!r} links outside the server's --root folder")


# --------------------------------------------------------------------------- running
class _Stop(Exception):
    """Raised inside a stage when another stage failed."""


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=0.05)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            continue


def colorize_many(
    sources: Sequence[Source],
    out: str | os.PathLike[str],
    model: Any,
    options: Any = None,
    hints: str | os.PathLike[str] | None = None,
    batch_size: int = 4,
    workers: int | None = None,
    carry: CarrySettings | bool = True,
    overwrite: bool = False,
    progress: bool | None = None,
    on_frame: Callable[[FrameJob], None] | None = None,
    cancel: threading.Event | None = None,
    remote: Any = None,
    root: str | os.PathLike[str] | None = None,
    fail_fast: bool = True,
    max_pixels: int | None = fio.DEFAULT_MAX_PIXELS,
) -> BatchResult:
    """Colorize every frame of ``sources`` into ``out`` (see the module docstring).

    ``model``: a loaded ``model.Model``; ``options``: ``pipeline.ColorizeOptions``;
    ``hints``: one RGBA hint image for all frames, or a folder of per-frame ones
    (``HintSource``); ``carry``: carry colors between frames of a sequence (True,
    False, or CarrySettings); ``overwrite``: redo outputs that exist instead of
    skipping them; ``progress``: tqdm bar (None: only on a terminal); ``on_frame``:
    called in order after each output frame is written; ``cancel``: set it to stop
    between frames (raises InkHueError); ``remote``: a ray_runner.RayRunner that does
    each group's prepare / model / finish elsewhere (the same groups, the same bytes;
    reading, carry and writing stay here); ``root``: hint files must lie under it
    (``HintSource``); ``max_pixels``: largest frame (width x height; None: no limit).
    Inputs are never overwritten: a plan that would do so is refused before any work.

    ``fail_fast`` (the default) raises the first frame's InputError (an unreadable or
    too large image, a hint image that does not fit it). Without it the run goes on:
    every other frame is written, the bad ones are listed in ``BatchResult.failed``, and
    a sequence's carry starts afresh after a bad frame (so a re-run gives the same
    pixels). A video output is all or nothing, so it always fails fast; so do errors of
    the model, the output and video decoding.
    """
    from inkhue_engine import pipeline

    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: use 1 or more")
    options = options if options is not None else pipeline.ColorizeOptions()
    settings = carry if isinstance(carry, CarrySettings) else CarrySettings(enabled=bool(carry))
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    sources = list(sources)
    if not sources:
        raise InputError("no input frames")
    start = time.perf_counter()
    plan = plan_outputs(sources, out)
    result = BatchResult(output=plan.out)
    fail_fast = fail_fast or plan.mode == "video"
    for src in sources:  # a video's size is in its header: refuse it before any work
        if src.is_video:
            info = fio.video_info(src.path)
            fio.check_pixels(info.width, info.height, max_pixels, src.path)

    if plan.mode == "video" and plan.out.is_file() and not overwrite:
        result.skipped = sum(1 for _ in _jobs(sources, plan, overwrite))
        result.seconds = time.perf_counter() - start
        return result

    jobs = list(_jobs(sources, plan, overwrite))
    hint_source = HintSource(hints, [j.name for j in jobs], root=root)
    # a hint image is an input too: never a finished frame to skip, never overwritten
    hint_files = fio.InputSet(hint_source.files())
    for path in [j.output for j in jobs] + ([plan.out] if plan.mode == "video" else []):
        if path is not None:
            hint_files.check(path)
    recorded = run_settings(model, options, hints, settings)
    manifest = _update_manifest(plan, jobs, recorded, overwrite)
    inputs = fio.InputSet(s.path for s in sources)
    for job in jobs:  # e.g. frame_00001.png of a video over an input of the same name
        if job.output is not None and not job.done:
            fio.check_not_input(job.output, inputs)
    todo = [j for j in jobs if not j.done]
    result.skipped = len(jobs) - len(todo)
    if not todo:
        result.seconds = time.perf_counter() - start
        return result

    # Frames that must be read: groups with work, plus (with carry) every earlier frame
    # of a sequence that still has work, to rebuild its carry state.
    groups: list[list[FrameJob]] = [
        jobs[i : i + batch_size] for i in range(0, len(jobs), batch_size)
    ]
    last_todo: dict[int, int] = {}
    for j in todo:
        last_todo[j.sequence] = j.index
    need_read = [
        any(not j.done for j in g)
        or (settings.enabled and any(j.index < last_todo.get(j.sequence, -1) for j in g))
        for g in groups
    ]

    # Make the folders, record the settings, drop temp files of an interrupted run.
    created: list[Path] = []
    for folder in sorted(
        {j.output.parent for j in todo if j.output is not None}
        | ({plan.out.parent} if plan.mode == "video" else set())
    ):
        created.extend(_make_dirs(folder))
    for job in todo:
        if job.output is not None:
            for stale in fio.stale_temps(job.output):
                stale.unlink(missing_ok=True)
    if plan.mode == "video":
        for stale in fio.stale_temps(plan.out):
            stale.unlink(missing_ok=True)
    new_manifest = manifest is not None and not manifest[0].exists()
    if manifest is not None:
        fio.write_bytes_atomic(*manifest)

    def clean_up() -> None:
        if new_manifest and manifest is not None:
            manifest[0].unlink(missing_ok=True)
        for folder in reversed(created):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    try:
        result = _run(
            jobs,
            groups,
            need_read,
            plan,
            result,
            model,
            options,
            hint_source,
            settings,
            inputs,
            batch_size,
            workers,
            progress,
            on_frame,
            cancel,
            start,
            sources,
            fail_fast,
            max_pixels,
            remote,
            Path(root).resolve() if root is not None else None,
        )
    except BaseException:
        if result.written == 0:  # a run that failed before its first output leaves nothing
            clean_up()
        else:
            record_written(plan, result.outputs, recorded)
        raise
    if result.written == 0 and result.failed:
        clean_up()
    record_written(plan, result.outputs, recorded)
    return result


def _make_dirs(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (outermost first)."""
    missing: list[Path] = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    return list(reversed(missing))


def _run(
    jobs: list[FrameJob],
    groups: list[list[FrameJob]],
    need_read: list[bool],
    plan: OutputPlan,
    result: BatchResult,
    model: Any,
    options: Any,
    hint_source: HintSource,
    settings: CarrySettings,
    inputs: fio.InputSet,
    batch_size: int,
    workers: int,
    progress: bool | None,
    on_frame: Callable[[FrameJob], None] | None,
    cancel: threading.Event | None,
    start: float,
    sources: Sequence[Source],
    fail_fast: bool,
    max_pixels: int | None,
    remote: Any = None,
    root: Path | None = None,
) -> BatchResult:
    """The three stages of colorize_many (its checks and planning done)."""
    from inkhue_engine import pipeline

    stop = threading.Event()
    errors: list[BaseException] = []
    in_flight = remote.in_flight if remote is not None else 1  # groups computed at once
    q_groups: queue.Queue = queue.Queue(maxsize=2)
    q_frames: queue.Queue = queue.Queue(maxsize=(1 + in_flight) * batch_size + workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inkhue-batch")
    info = model.info

    def fail(exc: BaseException) -> None:
        if not isinstance(exc, _Stop):
            errors.append(exc)
        stop.set()

    # -- stage 1: read, hint and prepare ------------------------------------------
    loader = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inkhue-load")

    def check_root(path: Path) -> None:
        check_under_root(path, root, "inputs")  # at planning too; a link may be swapped in since

    def load(j: FrameJob, work: bool) -> None:
        """Read (an image; a video's frame is decoded already) and prepare one frame."""
        try:
            if not j.source.is_video:
                check_root(j.source.path)
                j.frame = fio.read_image(j.source.path, max_pixels)
            if work and remote is not None:  # prepared where the model runs
                j.prepared = hint_source.for_frame(j.name, j.frame.shape)
            elif work:  # the whole group meets the model, done frames included
                j.prepared = pipeline.prepare_frame(
                    j.frame, info, hint_source.for_frame(j.name, j.frame.shape), options
                )
        except InputError as exc:
            if fail_fast:
                raise
            j.error, j.frame, j.prepared = str(exc), None, None

    def reader() -> None:
        try:
            video_iters: dict[Path, Iterator[np.ndarray]] = {}
            for group, needed in zip(groups, need_read, strict=True):
                if not needed:
                    if any(j.source.is_video for j in group):
                        for j in group:  # keep the video decoders in step
                            if j.source.is_video:
                                _next_video_frame(video_iters, j)
                    _put(q_groups, group, stop)
                    continue
                work = any(not j.done for j in group)
                loading = []
                for j in group:
                    if cancel is not None and cancel.is_set():
                        raise InkHueError("cancelled")
                    if j.source.is_video:  # a decoding error stops the run (the stream)
                        if j.source.path not in video_iters:
                            check_root(j.source.path)
                        j.frame = _next_video_frame(video_iters, j)
                    # the frames of a group are read and prepared in parallel: one thread
                    # left a core idle while the first group filled (docs/PERFORMANCE.md)
                    loading.append(loader.submit(load, j, work))
                for f in loading:  # in order: the first bad frame's error, as before
                    f.result()
                _put(q_groups, group, stop)
            _put(q_groups, _END, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            fail(exc)

    # -- stage 3: carry, then write, in order -------------------------------------
    bar = _progress_bar(progress, len(jobs), result.skipped)
    video_writer: fio.VideoWriter | None = None
    if plan.mode == "video":
        fps = _output_fps(sources)
        video_writer = fio.VideoWriter(plan.out, fps, inputs)

    def sequencer() -> None:
        carries: dict[int, SequenceCarry] = {}
        previous: dict[int, tuple[np.ndarray | None, Path | None]] = {}
        pending: deque[tuple[FrameJob, Future]] = deque()

        def settle(block: bool) -> None:
            while pending and (block or pending[0][1].done()):
                job, fut = pending.popleft()
                fut.result()
                result.written += 1
                if job.output is not None:
                    result.outputs.append(job.output)
                if bar is not None:
                    bar.update(1)
                if on_frame is not None:
                    on_frame(job)

        try:
            while True:
                item = _get(q_frames, stop)
                if item is _END:
                    break
                job, fut = item
                if job.error is not None:
                    # the sequence starts afresh after a bad frame, as it will on a re-run
                    carries.pop(job.sequence, None)
                    previous.pop(job.sequence, None)
                    if not job.done:
                        result.failed.append(job.error)
                        if bar is not None:
                            bar.update(1)
                    continue
                state = carries.setdefault(job.sequence, SequenceCarry(settings))
                static = (
                    state.observe(job.frame) if settings.enabled and job.frame is not None else None
                )
                if job.done:
                    # its output is on disk: read it only if the next frame needs it
                    previous[job.sequence] = (None, job.output)
                    job.frame = None
                    continue
                fresh = fut.result()
                suffix = job.output.suffix if job.output is not None else None
                stored = fio.conform_for_format(fresh, suffix) if suffix else fresh
                prev_img, prev_path = previous.get(job.sequence, (None, None))
                if static is not None and prev_img is None and prev_path is not None:
                    prev_img = fio.read_image(prev_path)
                out_img = state.apply(stored, static, prev_img) if settings.enabled else stored
                job.frame = None
                if video_writer is not None:
                    video_writer.write(out_img)
                    previous[job.sequence] = (out_img, None)
                    done: Future = Future()
                    done.set_result(None)
                    pending.append((job, done))
                elif suffix is not None and suffix.lower() in fio.LOSSY_EXTS:
                    data = fio.encode_image(out_img, suffix)
                    previous[job.sequence] = (
                        fio.decode_image(np.frombuffer(data, np.uint8), job.output),
                        None,
                    )
                    pending.append((job, pool.submit(fio.write_bytes_atomic, job.output, data)))
                else:
                    previous[job.sequence] = (out_img, None)
                    pending.append(
                        (job, pool.submit(fio.write_image_atomic, job.output, out_img, inputs))
                    )
                settle(block=len(pending) > 2 * workers)
            settle(block=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            fail(exc)

    threads = [
        threading.Thread(target=reader, name="inkhue-reader", daemon=True),
        threading.Thread(target=sequencer, name="inkhue-sequencer", daemon=True),
    ]
    for t in threads:
        t.start()

    # -- stage 2: the model, in the calling thread ---------------------------------
    try:
        while True:
            group = _get(q_groups, stop)
            if group is _END:
                _put(q_frames, _END, stop)
                break
            if cancel is not None and cancel.is_set():
                raise InkHueError("cancelled")
            usable = [j for j in group if j.error is None]
            if remote is not None and any(not j.done for j in usable):
                remote_futures = remote.submit(
                    [j.frame for j in usable],
                    [j.prepared for j in usable],
                    [not j.done for j in usable],
                )
                by_index = {j.index: f for j, f in zip(usable, remote_futures, strict=True)}
                for j in group:  # in order, bad frames included (the sequencer lists them)
                    j.prepared = None
                    _put(q_frames, (j, by_index.get(j.index)), stop)
            elif any(not j.done for j in usable):
                predictions = pipeline.run_prepared(
                    model, [j.prepared for j in usable], batch_size=batch_size
                )
                futures: dict[int, Future | None] = {}
                for j, pred in zip(usable, predictions, strict=True):
                    if not j.done:
                        futures[j.index] = pool.submit(pipeline.finish_frame, j.prepared, pred)
                    j.prepared = None
                for j in group:  # in order, bad frames included (the sequencer lists them)
                    _put(q_frames, (j, futures.get(j.index)), stop)
            else:
                for j in group:
                    _put(q_frames, (j, None), stop)
        threads[1].join()
    except BaseException as exc:
        fail(exc)
    finally:
        stop_all = bool(errors) or stop.is_set()
        if stop_all:
            stop.set()
        for t in threads:
            t.join()
        loader.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=stop_all)
        if bar is not None:
            bar.close()
        if video_writer is not None:
            if stop_all:
                video_writer.abort()
            else:
                video_writer.close()
    if errors:
        raise errors[0]
    result.seconds = time.perf_counter() - start
    return result


def _next_video_frame(iters: dict[Path, Iterator[np.ndarray]], job: FrameJob) -> np.ndarray:
    it = iters.get(job.source.path)
    if it is None:
        it = iters[job.source.path] = fio.read_video(job.source.path)
    try:
        return next(it)
    except StopIteration:
        raise InputError(
            f"{job.source.path}: the video ended at frame {job.frame_no} although its "
            "header said more: it may be damaged"
        ) from None


def _output_fps(sources: Sequence[Source]) -> Any:
    for src in sources:
        if src.is_video:
            return fio.video_info(src.path).fps
    return 24


def _progress_bar(progress: bool | None, total: int, skipped: int) -> Any:
    if progress is False:
        return None
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=skipped,
        unit="frame",
        desc="colorize",
        dynamic_ncols=True,
        disable=None if progress is None else False,
        smoothing=0.1,
    )
    return bar


# --------------------------------------------------------------------------- shared
# The planning, resume and progress pieces that engine/shot.py (keyframe shots) runs
# its own sequential loop with.
def frame_jobs(sources: Sequence[Source], plan: OutputPlan, overwrite: bool) -> list[FrameJob]:
    """Every frame job of a run, in order, ``done`` set where the output exists."""
    return list(_jobs(sources, plan, overwrite))


def check_manifest(
    plan: OutputPlan, jobs: Sequence[FrameJob], settings: dict[str, Any], overwrite: bool
) -> tuple[Path, bytes] | None:
    """Refuse to resume over outputs of other settings; the record to write (or None)."""
    return _update_manifest(plan, jobs, settings, overwrite)


def output_fps(sources: Sequence[Source]) -> Any:
    """Frame rate of an output video: the first input video's, else 24."""
    return _output_fps(sources)


def progress_bar(progress: bool | None, total: int, skipped: int, desc: str = "colorize") -> Any:
    """A tqdm bar (None when ``progress`` is False; shown only on a terminal when None)."""
    bar = _progress_bar(progress, total, skipped)
    if bar is not None:
        bar.set_description(desc)
    return bar
