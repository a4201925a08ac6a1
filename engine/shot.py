"""Colorize a shot from the artist's colored keyframes (``inkhue colorize --reference``).

Each frame of the shot is matched to the keyframes and to the previous finished frame
(engine/keyframes.py). Regions matched there take the reference colors; the rest go
to the model with those colors as hints, then to the palette lock. A keyframe named
like a frame of the shot (same file stem) is that frame as the artist colored it: it
comes out unchanged, and its uncolored frame gives its regions.

Frames run in order (each one may lean on the previous result), outputs are written
atomically, and a re-run resumes: a finished frame is skipped and, when the next
frame needs it, read back from its file, so a resumed run gives the same bytes as an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inkhue_engine import batch
from inkhue_engine import frames_io as fio
from inkhue_engine import keyframes as kf
from inkhue_engine.color import from_float01, on_white
from inkhue_engine.errors import InkHueError, InputError
from inkhue_engine.frames_io import Source

#: Context around unmatched regions when the model colors them (pixels at 1024 px).
GENERATE_MARGIN = 48


@dataclass(frozen=True, eq=False)
class Keyframe:
    """A colored keyframe (or model sheet) as the artist gave it."""

    name: str  #: file name; its stem pairs it with the frame of the same stem
    image: np.ndarray  #: colored pixels, any supported dtype / layout
    frame: int | None = None  #: in-memory shots: index of the frame it colors (None: a sheet)
    #: The uncolored frame it colors when that frame is not among the frames given
    #: (e.g. a keyframe of another chunk of a long shot); None: ``frame`` or a sheet.
    structure: np.ndarray | None = None
    #: The file it was read from (load_keyframes): no output may overwrite it.
    path: Path | None = None

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def load_keyframes(
    paths: Sequence[str | os.PathLike[str]], max_pixels: int | None = None
) -> list[Keyframe]:
    """Keyframes from image files and folders of images (naturally sorted); one over
    ``max_pixels`` (width x height; None: no limit) raises InputError."""
    files: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = sorted(
                (
                    f
                    for f in p.iterdir()
                    if f.is_file()
                    and not f.name.startswith(".")
                    and f.suffix.lower() in fio.IMAGE_EXTS
                ),
                key=lambda f: fio.natural_key(f.name),
            )
            if not found:
                raise InputError(f"{p}: the keyframe folder holds no image")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: keyframe file or folder not found")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise InputError(f"{f} and {stems[f.stem]}: two keyframes for the frame {f.stem!r}")
        stems[f.stem] = f
    return [Keyframe(f.name, fio.read_image(f, max_pixels), path=f) for f in files]


def keyframe_as_output(key: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The artist's keyframe in the layout the frame's output has (same dtype; RGB,
    or RGBA with the frame's alpha when the frame has one)."""
    rgb = from_float01(on_white(key), frame.dtype)
    if frame.ndim == 3 and frame.shape[2] in (2, 4):
        return np.concatenate([rgb, frame[..., -1:]], axis=2)
    return rgb


def keyframe_passes_through(task: str, options: Any) -> bool:
    """Whether a keyframe's frame comes out as the artist painted it: not for line art's
    'fill' output (the fill alone, no lines), where that frame is colored from its
    keyframe (matched to its own regions) like every other frame."""
    return not (task == "lineart" and getattr(options, "output", "color") == "fill")


def lines_over(fill: np.ndarray, lineart: np.ndarray) -> np.ndarray:
    """A line-art keyframe from color painted under the lines (a fill layer): the
    line-art frame multiplied over the fill, both over white (sRGB float32 RGB 0..1).
    Lines already in the fill stay as dark as they were."""
    return (on_white(fill) * on_white(lineart)).astype(np.float32)


def colorize_with_references(
    frame: np.ndarray, model: Any, references: Sequence[kf.Reference], options: Any = None
) -> tuple[np.ndarray, kf.FrameColors]:
    """Colorize one frame from colored references (see the module docstring).

    Returns the output (the colorizer's layout and dtype) and the matching it used.
    The model runs only when some region (MIN_REGION_PX or larger) found no match;
    the palette lock of ``options`` applies to those regions, the matched ones keep
    the artist's colors.
    """
    from inkhue_engine import pipeline

    options = options if options is not None else pipeline.ColorizeOptions()
    task = model.info.task
    references = list(references)
    colors = kf.colors_from_references(frame, task, references)
    lab, covered = kf.warped_colors(colors, references, lines_on_top=task == "lineart")
    if task == "grayscale":
        matched = pipeline.grayscale_with_ab(frame, lab[..., 1:])
    else:
        matched = pipeline.lineart_with_fill(frame, lab, options.output)
    if covered.all():
        return matched, colors
    out = matched.copy()
    rows, cols, generated = _generate(frame, model, colors, options, ~covered)
    keep = covered[rows, cols]
    out[rows, cols] = np.where(keep[..., None], matched[rows, cols], generated)
    return out, colors


def _generate(
    frame: np.ndarray, model: Any, colors: kf.FrameColors, options: Any, need: np.ndarray
) -> tuple[slice, slice, np.ndarray]:
    """Run the model, with the matched colors as hints, on the part of the frame around
    the pixels in ``need`` (with GENERATE_MARGIN of context), at the scale it would see
    the whole frame at, so one unmatched region costs what its size is worth. Returns
    (rows, cols, output)."""
    from dataclasses import replace

    from inkhue_engine import pipeline

    h, w = need.shape
    ys, xs = np.nonzero(need)
    m = max(GENERATE_MARGIN, int(GENERATE_MARGIN * max(h, w) / 1024))
    y0, y1 = max(0, ys.min() - m), min(h, ys.max() + 1 + m)
    x0, x1 = max(0, xs.min() - m), min(w, xs.max() + 1 + m)
    rows, cols = slice(y0, y1), slice(x0, x1)
    if (y1 - y0) * (x1 - x0) > 0.5 * h * w:
        rows, cols = slice(0, h), slice(0, w)
    ab, mask, L = kf.hint_maps(colors, rows, cols)
    hints = (ab, mask, L) if model.info.task == "lineart" else (ab, mask)
    if (rows.stop - rows.start) * (cols.stop - cols.start) == h * w:
        return rows, cols, pipeline.colorize_frame(frame, model, hints, options)
    full_scale = pipeline.working_size((h, w), model.info, options)[0] / h
    crop_short = min(y1 - y0, x1 - x0)
    detail = max(1e-3, full_scale * crop_short / model.info.train_size)
    crop_opts = replace(options, detail=min(options.detail, detail)) if full_scale < 1 else options
    return rows, cols, pipeline.colorize_frame(frame[rows, cols], model, hints, crop_opts)


def build_references(
    keyframes: Sequence[Keyframe],
    task: str,
    size: tuple[int, int],
    structure_of: Callable[[Keyframe], np.ndarray | None],
) -> list[kf.Reference]:
    """The keyframes as references for frames of ``size`` (h, w): scaled to it, checked
    against their own uncolored frame (``structure_of``; None for a model sheet), whose
    regions they then take. InputError names the keyframe that cannot be used."""
    refs = []
    for k in keyframes:
        image = kf.fit_to_frame(k.image, size, k.name)
        structure = k.structure if k.structure is not None else structure_of(k)
        if structure is not None and structure.shape[:2] != size:
            structure = None
        if structure is not None:
            kf.check_keyframe_fits(image, structure, task, k.name)
        refs.append(kf.make_reference(image, task, structure, name=k.name))
    return refs


def colorize_frames(
    frames: Iterable[np.ndarray],
    model: Any,
    keyframes: Sequence[Keyframe],
    options: Any = None,
    use_previous: bool = True,
    structure_of: Callable[[int], np.ndarray] | None = None,
    previous: tuple[np.ndarray, np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Colorize the frames of one shot, in order, from ``keyframes`` (in memory).

    A keyframe whose ``frame`` is i is frame i as the artist colored it: it comes out
    unchanged, and ``structure_of(i)`` (the uncolored frame i) gives its regions; a
    keyframe with a ``structure`` colors that frame (outside ``frames``); any other is
    a model sheet. ``previous``: (output, input) of the frame before the first, when
    ``frames`` continue a longer shot, so colors follow on from it (``use_previous``).
    The references are built before the first frame is colorized, so a bad keyframe
    fails before any output.
    """
    task = model.info.task
    by_index = {k.frame: k for k in keyframes if k.frame is not None}
    refs: dict[tuple[int, int], list[kf.Reference]] = {}

    def structure(k: Keyframe) -> np.ndarray | None:
        return structure_of(k.frame) if k.frame is not None and structure_of else None

    prev: kf.Reference | None = None
    if previous is not None and use_previous:
        prev_out, prev_frame = previous
        if prev_out.shape[:2] != prev_frame.shape[:2]:
            raise InputError(
                f"previous frame: its result is {prev_out.shape[1]}x{prev_out.shape[0]} but "
                f"its input is {prev_frame.shape[1]}x{prev_frame.shape[0]}"
            )
        prev = kf.make_reference(
            prev_out, task, prev_frame, "previous frame", "previous", require_color=False
        )
    for i, frame in enumerate(frames):
        size = frame.shape[:2]
        if size not in refs:
            refs[size] = build_references(keyframes, task, size, structure)
        key = by_index.get(i) if keyframe_passes_through(task, options) else None
        if key is not None:
            out = keyframe_as_output(kf.fit_to_frame(key.image, size, key.name), frame)
            prev = (
                kf.make_reference(
                    out, task, frame, "previous frame", "previous", require_color=False
                )
                if use_previous
                else None
            )
        else:
            use = refs[size] + ([prev] if prev is not None and prev.L.shape == size else [])
            out, colors = colorize_with_references(frame, model, use, options)
            prev = kf.previous_reference(colors, out, task) if use_previous else None
        yield out


@dataclass
class _Previous:
    """The last finished frame of a sequence: its input and its output (as stored)."""

    sequence: int
    frame: np.ndarray | None
    output: np.ndarray | None
    job: batch.FrameJob | None  # when done in an earlier run: read lazily
    colors: kf.FrameColors | None = None  # its matching, when it was matched in this run


def _settings(model: Any, options: Any, keys: Sequence[Keyframe], use_previous: bool) -> dict:
    base = batch.run_settings(model, options, None, batch.CarrySettings(enabled=False))
    digest = hashlib.sha256()
    for k in keys:
        digest.update(k.name.encode())
        digest.update(str(k.image.shape).encode() + k.image.dtype.str.encode())
        digest.update(np.ascontiguousarray(k.image).tobytes())
    base["keyframes"] = digest.hexdigest()[:16]
    base["follow_previous"] = use_previous
    return base


def colorize_shot(
    sources: Sequence[Source],
    out: str | os.PathLike[str],
    model: Any,
    keyframes: Sequence[Keyframe],
    options: Any = None,
    use_previous: bool = True,
    overwrite: bool = False,
    progress: bool | None = None,
    on_frame: Callable[[batch.FrameJob], None] | None = None,
    cancel: threading.Event | None = None,
    max_pixels: int | None = fio.DEFAULT_MAX_PIXELS,
    root: str | os.PathLike[str] | None = None,
) -> batch.BatchResult:
    """Colorize every frame of ``sources`` into ``out`` from the colored ``keyframes``.

    Outputs are planned as ``batch.colorize_many`` plans them (files, folders, a
    video); ``use_previous``: match each frame to the previous finished frame too.
    ``max_pixels``: largest frame (width x height; None: no limit); ``root`` (the server's
    --root): each input must still resolve under it when it is read (ForbiddenError).
    Raises InputError for a keyframe without color or of another framing.
    """
    from inkhue_engine import pipeline

    if not keyframes:
        raise InputError(
            "no keyframe given: color a frame of the shot and pass it with --reference"
        )
    options = options if options is not None else pipeline.ColorizeOptions()
    task = model.info.task
    start = time.perf_counter()
    sources = list(sources)
    plan = batch.plan_outputs(sources, out)
    result = batch.BatchResult(output=plan.out)
    read = _FrameReader(max_pixels, root)
    jobs = batch.frame_jobs(sources, plan, overwrite)
    # a keyframe file is an input too: never taken for a finished frame, never overwritten
    inputs = fio.InputSet([s.path for s in sources] + [k.path for k in keyframes if k.path])
    for target in [j.output for j in jobs] + ([plan.out] if plan.mode == "video" else []):
        if target is not None:
            inputs.check(target)
    if plan.mode == "video" and plan.out.is_file() and not overwrite:
        result.skipped = len(jobs)
        return result
    by_stem = {k.stem: k for k in keyframes}
    settings = _settings(model, options, keyframes, use_previous)
    manifest = batch.check_manifest(plan, jobs, settings, overwrite)
    todo = [j for j in jobs if not j.done]
    result.skipped = len(jobs) - len(todo)
    if not todo:
        result.seconds = time.perf_counter() - start
        return result
    # Keyframe references, built before any output is written (a bad keyframe leaves
    # nothing behind). A keyframe named like an image frame of the shot takes its
    # regions from that frame.
    frame_of_stem = {Path(j.name).stem: j for j in jobs if not j.source.is_video}
    refs: dict[tuple[int, int], list[kf.Reference]] = {}

    def structure(k: Keyframe) -> np.ndarray | None:
        job = frame_of_stem.get(k.stem)
        return read.image(job.source.path) if job is not None else None

    def references(size: tuple[int, int]) -> list[kf.Reference]:
        if size not in refs:
            refs[size] = build_references(keyframes, task, size, structure)
        return refs[size]

    # every frame size of the run (a shot's frames may differ in size): a keyframe that fits
    # one size but not another is refused here, before any output is written
    sized_videos: set[Path] = set()
    for j in todo:
        if j.source.is_video:
            if j.source.path in sized_videos:
                continue
            sized_videos.add(j.source.path)
        references(read.size(j))
    for folder in sorted({j.output.parent for j in todo if j.output is not None}):
        folder.mkdir(parents=True, exist_ok=True)
    if manifest is not None:
        fio.write_bytes_atomic(*manifest)

    video_writer = None
    if plan.mode == "video":
        video_writer = fio.VideoWriter(plan.out, batch.output_fps(sources), inputs)
    bar = batch.progress_bar(progress, len(jobs), result.skipped, desc="colorize shot")
    prev = _Previous(-1, None, None, None)
    ok = False
    try:
        for job, frame in _frames(jobs, todo, read):
            if cancel is not None and cancel.is_set():
                raise InkHueError("cancelled")
            if job.sequence != prev.sequence:
                prev = _Previous(job.sequence, None, None, None)
            if job.done:  # a video's frame is decoded anyway: kept (its file is no image)
                prev = _Previous(job.sequence, frame, None, job)
                continue
            key = (
                by_stem.get(Path(job.name).stem) if keyframe_passes_through(task, options) else None
            )
            colors = None
            if key is not None:
                fitted = kf.fit_to_frame(key.image, frame.shape[:2], key.name)
                if frame_of_stem.get(key.stem) is not job:
                    # paired by name only (a video's frame): its structure was not checked
                    # when the references were built
                    kf.check_keyframe_fits(fitted, frame, task, key.name)
                out_img = keyframe_as_output(fitted, frame)
            else:
                use = list(references(frame.shape[:2]))
                if use_previous:
                    prev_ref = _previous_reference(prev, task, frame.shape[:2])
                    if prev_ref is not None:
                        use.append(prev_ref)
                out_img, colors = colorize_with_references(frame, model, use, options)
            stored = _write(job, out_img, video_writer, inputs)
            result.written += 1
            if job.output is not None:
                result.outputs.append(job.output)
            prev = _Previous(job.sequence, frame, stored, None, colors)
            if bar is not None:
                bar.update(1)
            if on_frame is not None:
                on_frame(job)
        ok = True
    finally:
        # outputs rewritten under --overwrite are claimed once written (batch.record_written)
        batch.record_written(plan, result.outputs, settings)
        if bar is not None:
            bar.close()
        if video_writer is not None:
            if ok:
                video_writer.close()
            else:
                video_writer.abort()
    result.seconds = time.perf_counter() - start
    return result


class _FrameReader:
    """Reads a shot's input frames within ``max_pixels`` and, with a ``root`` (the
    server's --root), only where they still resolve under it (ForbiddenError)."""

    def __init__(self, max_pixels: int | None, root: str | os.PathLike[str] | None) -> None:
        self.max_pixels = max_pixels
        self.root = Path(root).resolve() if root is not None else None

    def image(self, path: Path) -> np.ndarray:
        batch.check_under_root(path, self.root, "inputs")
        return fio.read_image(path, self.max_pixels)

    def size(self, job: batch.FrameJob) -> tuple[int, int]:
        """(h, w) of a job's frame: a video's and a PNG's from their headers."""
        path = job.source.path
        batch.check_under_root(path, self.root, "inputs")
        if job.source.is_video:
            info = fio.video_info(path)
            fio.check_pixels(info.width, info.height, self.max_pixels, path)
            return info.height, info.width
        return fio.image_size(path, self.max_pixels)

    def video(self, path: Path) -> Iterator[np.ndarray]:
        batch.check_under_root(path, self.root, "inputs")
        return fio.read_video(path)


def _frames(
    jobs: list[batch.FrameJob], todo: list[batch.FrameJob], read: _FrameReader
) -> Iterator[tuple[batch.FrameJob, np.ndarray | None]]:
    """Each job with its input frame (None for a done image; videos decoded in step), read
    with ``read``."""
    last = todo[-1].index
    videos: dict[Path, Iterator[np.ndarray]] = {}
    for job in jobs:
        if job.index > last:
            return
        if job.source.is_video:
            it = videos.get(job.source.path)
            if it is None:
                it = videos[job.source.path] = read.video(job.source.path)
            frame = next(it, None)
            if frame is None:
                raise InputError(f"{job.source.path}: the video ended at frame {job.frame_no}")
            yield job, frame
        else:
            yield job, (None if job.done else read.image(job.source.path))


def _previous_reference(prev: _Previous, task: str, size: tuple[int, int]) -> kf.Reference | None:
    """The previous finished frame as a reference (read back from its file when it was
    finished by an earlier run), or None at a sequence's start."""
    frame, output = prev.frame, prev.output
    if prev.colors is not None and output is not None and output.shape[:2] == size:
        return kf.previous_reference(prev.colors, output, task)
    if prev.job is not None and prev.job.output is not None:
        if frame is None:  # an image frame done by an earlier run (a video's is kept)
            frame = fio.read_image(prev.job.source.path)
        output = fio.read_image(prev.job.output)
    if frame is None or output is None or frame.shape[:2] != size or output.shape[:2] != size:
        return None
    return kf.make_reference(
        output, task, frame, name="previous frame", kind="previous", require_color=False
    )


def _write(
    job: batch.FrameJob, img: np.ndarray, video_writer: Any, inputs: fio.InputSet
) -> np.ndarray:
    """Write one output; returns the pixels a later read of it gives."""
    if video_writer is not None:
        video_writer.write(img)
        return img
    suffix = job.output.suffix
    stored = fio.stored_pixels(img, suffix)
    fio.write_image_atomic(job.output, img, inputs)
    return stored
