"""The engine's local HTTP service, ``inkhue serve`` (API: docs/HTTP_API.md).

``create_app(ServerConfig(...))`` builds the FastAPI app; ``inkhue serve`` runs it
with uvicorn. Frames travel as raw pixels (server_frames.PixelLayout), batch jobs
live in an in-memory registry (server_jobs.JobRegistry).

The parts, by concern: server_security (who may talk to the server: bind check, Host,
Origin, token, streamed body limit; paths that never leave ``--root``), server_frames
(raw pixels on the wire), server_jobs (the job and training registries),
server_training (the /train routes), server_schemas (shared request and error types).
This module holds the configuration, the engine glue and the colorize and jobs routes.
Inference runs in worker threads (ONNX Runtime releases the GIL), at most
``inference_slots`` at a time (by default one per usable core, up to 4: one long frame
does not hold up the rest), shared by single requests and jobs (a click in Krita waits
for at most one batch frame per slot).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    Field,
    StrictBool,
)
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from inkhue_engine import __version__
from inkhue_engine import frames_io as fio
from inkhue_engine import keyframes as kf
from inkhue_engine.batch import (
    CarrySettings,
    HintSource,
    check_under_root,
    colorize_many,
    colorize_sequence,
    plan_outputs,
)
from inkhue_engine.errors import InkHueError, InputError, ModelError
from inkhue_engine.frames_io import DEFAULT_MAX_PIXELS, count_video_frames, expand_inputs
from inkhue_engine.model import (
    Model,
    list_models,
    load_model,
    read_model_info,
    resolve_model,
    user_models_dir,
)
from inkhue_engine.palette import MAX_PALETTE_COLORS
from inkhue_engine.pipeline import ColorizeOptions, colorize_frame, with_palette
from inkhue_engine.server_frames import PixelLayout, parse_palette
from inkhue_engine.server_jobs import (
    MAX_JOB_FRAMES,
    ConflictError,
    Job,
    JobLimits,
    JobRegistry,
    KeyframeSlot,
    NotFoundError,
    TrainRegistry,
)
from inkhue_engine.server_schemas import ERRORS, ErrorBody, HexColor, JsonBody, ServerPath
from inkhue_engine.server_security import (
    GuardMiddleware,
    check_bind,
    is_loopback,
    json_error,
    resolve_under_root,
)
from inkhue_engine.server_training import (
    TrainFilesRequest,
    TrainOptions,
    add_training_routes,
)
from inkhue_engine.shot import Keyframe, colorize_frames, colorize_shot, lines_over, load_keyframes
from inkhue_engine.task_detect import SEQUENCE_FRAMES, detect_sequence, detect_sources

log = logging.getLogger("inkhue_engine.server")

MiB = 1024 * 1024
DEFAULT_PORT = 8765


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server (``inkhue serve`` flags map onto these).

    ``root``: the only folder ``POST /jobs/files`` may read and write (None: no
    server-side file access at all). ``models_dirs``: extra model folders besides
    the user's and the bundled ones. ``max_pixels``: largest frame (width x height).
    ``inference_slots``: inferences run at the same time; 0 = one per usable core, up
    to MAX_AUTO_SLOTS (auto_inference_slots). ``preload``: load the default models at
    startup so that /health already names the provider in use and the first click is fast.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    root: Path | None = None
    models_dirs: tuple[Path, ...] = ()
    device: str = "auto"
    max_body_bytes: int = 512 * MiB
    max_pixels: int = DEFAULT_MAX_PIXELS
    inference_slots: int = 0
    max_jobs: int = 16
    max_job_bytes: int = 4096 * MiB
    job_ttl_s: float = 3600.0
    preload: bool = False


#: Most inference slots ``inference_slots=0`` (auto) gives: each frame in flight holds its
#: full-resolution temporaries (~0.5 GiB for a 4K frame, docs/PERFORMANCE.md).
MAX_AUTO_SLOTS = 4


def auto_inference_slots() -> int:
    """One inference slot per core this process may use, at least 1, at most MAX_AUTO_SLOTS.

    Two slots on two cores let a small frame run beside a long one: the frame's own
    work is mostly single-threaded numpy, and ONNX Runtime shares its thread pool.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_AUTO_SLOTS, cores or 1))


# --------------------------------------------------------------------------- schemas


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    provider: str | None = Field(
        description="ONNX Runtime provider of the last loaded model (null before the first)"
    )
    device: str = Field(description="the device the server was asked to use (--device)")
    models: list[str]


class ModelEntry(BaseModel):
    name: str
    task: Literal["grayscale", "lineart"]
    file: str
    train_size: int
    multiple_of: int
    trained_on: str
    palette: list[str] | None
    builtin: bool


class Options(BaseModel):
    """Colorize options shared by /colorize (as query parameters) and the jobs (as JSON)."""

    model: str | None = Field(
        None,
        description="model name as listed by /models; default: the bundled model of task "
        "(absent too: of the task detected from the frame, or a job's first frames)",
    )
    task: Literal["grayscale", "lineart"] | None = Field(
        None,
        description="used to pick the default model when model is absent; absent: "
        "detected (line art or grayscale)",
    )
    detail: float = Field(
        1.0,
        gt=0,
        description="working short side = the model's train_size x detail (> 0; "
        "above 1 for finer detail, below 1 for speed or memory)",
    )
    regions: StrictBool = Field(True, description="make each region between lines one color")
    mirror: StrictBool = Field(
        True,
        description="average the model's colors for the frame and for its mirror image "
        "(steadier colors across a shot); false: one model pass, faster",
    )
    output: Literal["color", "fill"] = Field(
        "color", description="color: the colored frame; fill: flat colors only"
    )
    palette: (
        Annotated[list[HexColor], Field(min_length=1, max_length=MAX_PALETTE_COLORS)]
        | Literal["none"]
        | None
    ) = Field(
        None,
        description=f"list of 1-{MAX_PALETTE_COLORS} sRGB hex colors; 'none' turns off the "
        "model's own palette; absent or null: the model's palette, if any",
    )


class Layout(BaseModel):
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    channels: int = Field(ge=1, le=4, description="1 gray, 2 gray+alpha, 3 RGB, 4 RGBA")
    depth: Literal["u8", "u16", "f16", "f32"] = Field(description="little-endian samples")
    order: Literal["rgba", "bgra"] = Field("rgba", description="for 3/4 channels")


class ColorizeQuery(Options, Layout):
    """Query parameters of POST /colorize."""

    # a query carries text: "true" / "false" are its booleans (JSON bodies take only
    # true / false: 0 is not a boolean there)
    regions: bool = Field(True, description="make each region between lines one color")
    mirror: bool = Field(True, description="average the frame's and its mirror's colors")
    palette: str | None = Field(
        None,
        min_length=1,
        max_length=16 * MAX_PALETTE_COLORS,
        description=f"JSON list of 1-{MAX_PALETTE_COLORS} sRGB hex colors, e.g. "
        '["#ff0000","#00ff00"]; \'none\' turns off the model\'s own palette; absent: the '
        "model's palette, if any",
    )


#: Most keyframe paths one files job takes (each may be a folder), and most keyframes
#: one frames job takes.
MAX_REFERENCES = 64


class KeyframeSpec(Layout):
    """A colored keyframe of a frames job, uploaded with PUT /jobs/{id}/keyframes/{k}
    in this layout (a model sheet may have any size; a keyframe of the shot is scaled to
    the frames when only its scale differs)."""

    frame: int | None = Field(
        None,
        ge=0,
        description="index of the job's frame this keyframe colors: that frame comes out "
        "as given and gives the keyframe's regions; absent: a keyframe of a frame outside "
        "this job (see structure) or a model sheet",
    )
    structure: StrictBool = Field(
        False,
        description="the uncolored frame this keyframe colors is not in this job: it is "
        "uploaded with PUT /jobs/{id}/keyframes/{k}/structure, in the job's frame layout",
    )
    under_lines: StrictBool = Field(
        False,
        description="line art: the keyframe is the color painted under the lines (a fill "
        "layer); the engine draws its frame's lines over it (needs frame or structure)",
    )
    name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="what messages call it (e.g. \"frame 12 of layer 'Colour'\"); "
        "absent: keyframe k",
    )
    previous: StrictBool = Field(
        False,
        description="the result of the frame just before this job's first one (a longer "
        "shot sent in several jobs), with that frame as its structure: colors follow on "
        "from it as they do between frames of one job (needs structure and carry)",
    )


class JobRequest(JsonBody, Options, Layout):
    """Body of POST /jobs."""

    frame_count: int = Field(
        ge=1, le=MAX_JOB_FRAMES, description="frames in the job (a longer sequence: several jobs)"
    )
    carry: StrictBool = Field(
        True,
        description="the frames are one sequence: carry colors from frame to frame "
        "where the picture did not change (less flicker); with keyframes: also match each "
        "frame to the previous finished one",
    )
    keyframes: list[KeyframeSpec] | None = Field(
        None,
        max_length=MAX_REFERENCES,
        description="colored keyframes of the shot (or model sheets): each frame takes "
        "their colors region by region (engine/shot.py, docs/KEYFRAMES.md); uploaded "
        "before the job starts. Not with hints",
    )


class DetectQuery(Layout):
    """Query parameters of POST /detect (the pixel layout of the frames)."""


class Detected(BaseModel):
    task: Literal["grayscale", "lineart"]
    confidence: float = Field(description="0..1; 0 for a blank frame")
    colored: bool = Field(description="the frame already has colors (only its L is used)")
    blank: bool = Field(description="no lines and no shading: task is the default")
    reason: str
    model: str | None = Field(
        description="the model a request without model and task would use for this task"
    )


class JobStatus(BaseModel):
    id: str
    state: Literal["uploading", "running", "done", "cancelled", "failed"]
    done: int
    total: int
    error: str | None
    forgotten: bool | None = Field(None, description="DELETE only: the job is gone")


def _reference_files(paths: list[Path], root: Path | None) -> list[Path]:
    """Keyframe files of ``references``: files as given, folders expanded (images, natural
    order); every file must lie under ``root`` after resolving links (403 otherwise)."""
    files: list[Path] = []
    for p in paths:
        found = (
            sorted(
                (
                    f
                    for f in p.iterdir()
                    if f.is_file()
                    and not f.name.startswith(".")
                    and f.suffix.lower() in fio.IMAGE_EXTS
                ),
                key=lambda f: fio.natural_key(f.name),
            )
            if p.is_dir()
            else [p]
        )
        files.extend(resolve_under_root(str(f), root, "references") for f in found)
    return files


class FilesJobRequest(JsonBody, Options):
    """Body of POST /jobs/files: server-side files, all under the server's --root."""

    inputs: list[ServerPath] = Field(
        min_length=1,
        description="image files, folders, globs or videos; absolute or relative to --root",
    )
    out: ServerPath = Field(
        description="where results go, under --root: a folder (created if needed), an "
        "image file (one image in) or a video file (.mp4 / .mov...)"
    )
    hints: ServerPath | None = Field(
        None,
        description="under --root: one RGBA hint image for all frames, or a folder of "
        "hint images named like the frames",
    )
    references: list[ServerPath] | None = Field(
        None,
        max_length=MAX_REFERENCES,
        description="under --root: colored keyframes of the shot (or model sheets), files or "
        "folders of them; each frame takes their colors region by region (engine/shot.py, "
        "docs/KEYFRAMES.md); a keyframe named like a frame comes out unchanged. Not with hints",
    )
    batch_size: int = Field(4, ge=1, le=64)
    carry: StrictBool = Field(
        True,
        description="carry colors between frames of a sequence (with references: also match "
        "each frame to the previous finished one)",
    )
    overwrite: StrictBool = Field(False, description="redo outputs that exist (else: skip them)")


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FRAME_HEADERS = {
    f"X-InkHue-{name}": {"schema": {"type": "string"}, "description": text}
    for name, text in (
        ("Width", "width of the result"),
        ("Height", "height of the result"),
        ("Channels", "3 (no alpha in) or 4 (alpha kept)"),
        ("Depth", "u8 / u16 / f16 / f32, as the input"),
        ("Order", "rgba / bgra, as the input"),
        ("Model", "name of the model that ran"),
        ("Task", "/colorize: the task of the model that ran (grayscale / lineart)"),
        ("Detected", "/colorize without model and task: what task_detect found (one line)"),
    )
}
_FRAME_RESPONSE = {
    200: {
        "description": "the result frame: raw pixels in the request's depth and order",
        "content": {"application/octet-stream": _BINARY},
        "headers": _FRAME_HEADERS,
    },
    **ERRORS,
}
_RAW_BODY = {
    "requestBody": {
        "required": True,
        "description": "raw pixels (see the pixel layout in docs/HTTP_API.md)",
        "content": {"application/octet-stream": _BINARY},
    }
}
_DETECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary", "description": "one raw frame"}
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["frame"],
                    "properties": {
                        "frame": {
                            "type": "array",
                            "maxItems": SEQUENCE_FRAMES,
                            "items": {"type": "string", "format": "binary"},
                            "description": "1-3 raw frames of one sequence (file parts)",
                        }
                    },
                },
            },
        },
    }
}
_COLORIZE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["frame"],
                    "properties": {
                        "frame": {
                            "type": "string",
                            "format": "binary",
                            "description": "raw pixels in the query's layout; a file part "
                            "(its Content-Disposition must have a filename)",
                        },
                        "hints": {
                            "type": "string",
                            "format": "binary",
                            "description": "raw RGBA u8 hint image, same size, channel order "
                            "as 'order'; every pixel with alpha > 0 is a hint",
                        },
                    },
                },
                "encoding": {
                    "frame": {"contentType": "application/octet-stream"},
                    "hints": {"contentType": "application/octet-stream"},
                },
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "alternative: the raw frame as the whole body (no hints)",
                }
            },
        },
    }
}


# --------------------------------------------------------------------------- engine glue


@dataclass
class _Choice:
    """What to run: a model file, the pipeline options, and the palette asked for."""

    path: Path | None  #: None: the default model of the task detected from the frames
    options: ColorizeOptions  #: palette not applied yet (see Engine.options_for)
    palette: tuple[str, ...] | None  #: None: the model's own; (): none at all


class Engine:
    """The server's link to the engine: model lookup and loading, guarded inference."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.slots = threading.BoundedSemaphore(
            config.inference_slots if config.inference_slots > 0 else auto_inference_slots()
        )
        self.providers: list[str] | None = None

    def model_names(self) -> list[str]:
        return [m.name for m in list_models(self.config.models_dirs)]

    def choose(self, opts: Options) -> _Choice:
        """Resolve the options' model and check the options, before anything heavy runs.

        Clients name models only (never server paths): a name matches a model's name or
        its file name without '.onnx', among the folders /models lists.
        """
        options = ColorizeOptions(
            detail=opts.detail,
            regions=opts.regions,
            output=opts.output,
            mirror_average=opts.mirror,
        )
        palette = parse_palette(opts.palette)
        if opts.model:
            models = list_models(self.config.models_dirs)
            matches = [m for m in models if opts.model in (m.name, m.path.stem)]
            if opts.task is not None:
                matches.sort(key=lambda m: m.task != opts.task)
            if not matches:
                names = ", ".join(sorted({m.name for m in models})) or "none"
                raise NotFoundError(
                    f"model: no model named {opts.model!r} (available: {names}); "
                    f"GET /models lists them"
                )
            path = matches[0].path
        elif opts.task is None:
            path = None  # detected from the frames (task_detect)
        else:
            path = self.default_path(opts.task)
        return _Choice(path, options, palette)

    def default_path(self, task: str | None) -> Path:
        """The bundled model of ``task`` (default grayscale), else the first model of that
        task that /models lists (user folder first); ModelError when there is none."""
        try:
            return resolve_model(None, task=task)
        except ModelError:
            want = task or "grayscale"
            for m in list_models(self.config.models_dirs):
                if m.task == want:
                    return m.path
            raise ModelError(
                f"model: none given and there is no {want} model (the bundled one is missing): "
                f"put a model file in {user_models_dir()}, or pass model=NAME"
            ) from None

    @staticmethod
    def options_for(choice: _Choice, model: Model) -> ColorizeOptions:
        """The options with the palette settled (pipeline.with_palette, as the CLI does)."""
        return with_palette(choice.options, choice.palette, model.info)

    def load(self, path: Path) -> Model:
        model = load_model(path, device=self.config.device)
        self.providers = list(model.providers)
        return model

    def colorize(
        self, frame: np.ndarray, model: Model, hints: np.ndarray | None, options: ColorizeOptions
    ) -> np.ndarray:
        """One frame through the pipeline, holding an inference slot."""
        with self.slots:
            return colorize_frame(frame, model, hints=hints, options=options)

    def colorize_bytes(
        self, layout: PixelLayout, frame: bytes, hints: bytes | None, choice: _Choice
    ) -> tuple[bytes, str, dict[str, str]]:
        """Raw frame (+ raw hints) -> raw result, the model's name and extra headers
        (X-InkHue-Task; X-InkHue-Detected when the task was detected). In a thread."""
        pixels = layout.decode(frame, "frame")
        hint_img = layout.hints_layout().decode(hints, "hints") if hints is not None else None
        path, extra = choice.path, {}
        if path is None:
            detection = detect_sequence([pixels])
            path = self.default_path(detection.task)
            extra["X-InkHue-Detected"] = _header_safe(detection.reason)
        model = self.load(path)
        result = self.colorize(pixels, model, hint_img, self.options_for(choice, model))
        extra["X-InkHue-Task"] = model.info.task
        return layout.encode(result), model.info.name, extra

    def detect_path(self, frames: Iterator[np.ndarray]) -> Path:
        """The default model of the task detect_sequence finds in ``frames``."""
        return self.default_path(detect_sequence(frames).task)

    def sequence(
        self,
        model: Model,
        options: ColorizeOptions,
        carry: bool,
        frames: Iterator[tuple[np.ndarray, np.ndarray | None]],
    ) -> Iterator[np.ndarray]:
        """Colorize consecutive frames of one sequence, in order, carrying colors from
        the previous result where the input did not change (engine.batch's
        colorize_sequence), each frame holding an inference slot."""
        return colorize_sequence(
            frames,
            lambda frame, hints: self.colorize(frame, model, hints, options),
            CarrySettings(enabled=carry),
        )


def _keyframe_slots(spec: JobRequest, task: str, max_pixels: int) -> list[KeyframeSlot]:
    """The job's keyframes as registry slots; InputError naming the field when they do
    not fit together (see KeyframeSpec)."""
    slots = []
    for k, key in enumerate(spec.keyframes or []):
        where = f"keyframes[{k}]"
        if key.frame is not None and key.frame >= spec.frame_count:
            raise InputError(
                f"{where}.frame: {key.frame} is not a frame of this job (0..{spec.frame_count - 1})"
            )
        if key.frame is not None and key.structure:
            raise InputError(
                f"{where}: frame and structure do not combine (the job's frame {key.frame} "
                "is its structure)"
            )
        if key.under_lines and task != "lineart":
            raise InputError(f"{where}.under_lines: only line art has lines to draw over colors")
        if key.under_lines and key.frame is None and not key.structure:
            raise InputError(f"{where}.under_lines: needs the frame's lines (frame or structure)")
        if key.previous and (key.frame is not None or not key.structure):
            raise InputError(f"{where}.previous: needs structure (and no frame)")
        if key.previous and not spec.carry:
            raise InputError(f"{where}.previous: needs carry (the job follows on from it)")
        slots.append(
            KeyframeSlot(
                _layout(key, max_pixels),
                frame=key.frame,
                wants_structure=key.structure,
                under_lines=key.under_lines,
                previous=key.previous,
                name=key.name or f"keyframe {k}",
            )
        )
    if sum(s.previous for s in slots) > 1:
        raise InputError("keyframes: at most one is the previous frame (previous: true)")
    if slots and all(s.previous for s in slots):
        raise InputError(
            "keyframes: the previous frame alone is not a keyframe: add the artist's keyframes"
        )
    frames = [s.frame for s in slots if s.frame is not None]
    if len(frames) != len(set(frames)):
        raise InputError("keyframes: two keyframes for the same frame of the job")
    return slots


def _run_keyframes_job(
    engine: Engine,
    jobs: JobRegistry,
    job: Job,
    model: Model,
    options: ColorizeOptions,
    carry: bool,
) -> None:
    """Worker of a frames job with keyframes: engine.shot.colorize_frames over its frames,
    one inference slot per frame."""
    layout = job.layout
    keys: list[Keyframe] = []
    previous = None
    for slot in jobs.take_keyframes(job):
        image = slot.layout.decode(slot.data, slot.name)
        structure = (
            layout.decode(slot.structure, f"{slot.name} (its frame)") if slot.structure else None
        )
        if slot.previous:
            previous = (image, structure)
            continue
        lines = structure
        if slot.under_lines and lines is None:
            lines = layout.decode(jobs.peek_input(job, slot.frame), f"frame {slot.frame}")
        if slot.under_lines:
            image = lines_over(kf.fit_to_frame(image, lines.shape[:2], slot.name), lines)
        keys.append(Keyframe(slot.name, image, frame=slot.frame, structure=structure))

    def structure_of(i: int) -> np.ndarray:
        return layout.decode(jobs.peek_input(job, i), f"frame {i}")

    def frames() -> Iterator[np.ndarray]:
        for i in range(job.total):
            if job.cancel.is_set():
                return
            data, _hints = jobs.take_input(job, i)
            yield layout.decode(data, f"frame {i}")

    results = colorize_frames(
        frames(), model, keys, options, carry, structure_of=structure_of, previous=previous
    )
    for i in range(job.total):
        with engine.slots:  # one frame at a time, like any other job
            result = next(results, None)
        if result is None:  # cancelled
            return
        jobs.store_result(job, i, layout.encode(result))


def _layout(spec: Layout, max_pixels: int) -> PixelLayout:
    layout = PixelLayout(spec.width, spec.height, spec.channels, spec.depth, spec.order)
    layout.check_pixels(max_pixels)
    return layout


async def _read_raw(request: Request, layout: PixelLayout, what: str) -> bytes:
    """The whole body as one frame: refused early when Content-Length already disagrees."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        layout.check_size(int(length), what)
    body = await request.body()
    layout.check_size(len(body), what)
    return body


async def _form_part(form: Any, name: str, required: bool) -> bytes | None:
    part = form.get(name)
    if part is None:
        if required:
            raise InputError(f"multipart part {name!r} is missing")
        return None
    if not isinstance(part, UploadFile):
        raise InputError(
            f"multipart part {name!r} came as a text field: send it as a file part "
            f"(give it a filename in its Content-Disposition)"
        )
    return await part.read()


# --------------------------------------------------------------------------- app


def create_app(config: ServerConfig) -> FastAPI:
    """The FastAPI app of ``inkhue serve`` (see the module docstring and docs/HTTP_API.md)."""
    engine = Engine(config)
    jobs = JobRegistry(
        JobLimits(max_jobs=config.max_jobs, max_bytes=config.max_job_bytes, ttl_s=config.job_ttl_s)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if config.preload:
            for task in ("grayscale", "lineart"):
                try:
                    await run_in_threadpool(engine.load, engine.default_path(task))
                except InkHueError as exc:
                    log.warning("preloading the %s model: %s", task, exc)
        yield
        jobs.cancel_all()
        await run_in_threadpool(train_jobs.cancel_all)

    app = FastAPI(
        title="InkHue engine",
        version=__version__,
        description="Colorize line art and grayscale frames (see docs/HTTP_API.md). "
        "Frames are raw pixels described by width, height, channels, depth and order.",
        lifespan=lifespan,
    )
    train_jobs = TrainRegistry(ttl_s=config.job_ttl_s)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's description plus the schemas /train's hand-written body refers to."""
        schema = default_openapi()  # built once, then cached by FastAPI
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (TrainOptions, TrainFilesRequest):
            if model.__name__ not in components:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[model.__name__] = body
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.engine = engine
    app.state.jobs = jobs
    app.state.train_jobs = train_jobs
    app.state.config = config
    app.add_middleware(GuardMiddleware, config=config)

    @app.exception_handler(InkHueError)
    async def _inkhue_error(request: Request, exc: InkHueError) -> JSONResponse:
        return json_error(exc.http_status, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route of this path only
            # (GET /train, not POST /train): name those of every route of the path
            methods = _path_methods(app, request.scope)
            headers = {**(headers or {}), "Allow": ", ".join(methods)}
            allowed = " or ".join(methods)
            message = f"method {request.method} is not allowed on this path: use {allowed}"
            return json_error(405, message, headers)
        return json_error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in _PATH_ERRNOS:  # a path the client sent cannot name a file here
            name = str(exc.filename)[:200] if exc.filename is not None else "a path"
            message = f"path {name!r}: {exc.strerror}: send a valid path under the --root"
            return json_error(400, message)
        return await _unexpected(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        lines = []
        for err in exc.errors():
            loc = [str(x) for x in err.get("loc", ())]
            where = {"query": "query parameter", "body": "JSON field", "path": "path part"}
            kind = where.get(loc[0], loc[0]) if loc else "request"
            field = ".".join(loc[1:]) or "body"
            lines.append(f"{kind} {field!r}: {err.get('msg', 'invalid')}")
        return json_error(400, "; ".join(lines) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        first = str(exc).splitlines()[0] if str(exc) else ""
        return json_error(500, f"internal error: {type(exc).__name__}: {first}".rstrip(": "))

    # -- info ---------------------------------------------------------------------
    @app.get("/health", response_model=Health, responses=ERRORS)
    async def health() -> dict:
        """Server status, version, the provider in use and the model names."""
        names = await run_in_threadpool(engine.model_names)
        provider = engine.providers[0] if engine.providers else None
        return {
            "status": "ok",
            "version": __version__,
            "provider": provider,
            "device": config.device,
            "models": names,
        }

    @app.get("/models", response_model=list[ModelEntry], responses=ERRORS)
    async def models() -> list[dict]:
        """Bundled and user models (re-scanned on each call)."""
        infos = await run_in_threadpool(list_models, config.models_dirs)
        return [m.as_dict() for m in infos]

    # -- one frame ----------------------------------------------------------------
    @app.post(
        "/colorize",
        response_class=Response,
        responses=_FRAME_RESPONSE,
        openapi_extra=_COLORIZE_BODY,
    )
    async def colorize(request: Request, query: Annotated[ColorizeQuery, Query()]) -> Response:
        """Colorize one frame (multipart: ``frame`` and optional ``hints``)."""
        layout = _layout(query, config.max_pixels)
        choice = await run_in_threadpool(engine.choose, query)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            async with request.form(max_files=2, max_fields=2) as form:
                frame = await _form_part(form, "frame", required=True)
                hints = await _form_part(form, "hints", required=False)
        elif ctype == "application/octet-stream":
            frame, hints = await _read_raw(request, layout, "body"), None
        else:
            raise InputError(
                f"Content-Type {ctype or 'missing'!r}: send multipart/form-data with a 'frame' "
                f"part (and optionally 'hints'), or the raw frame as application/octet-stream"
            )
        data, name, extra = await run_in_threadpool(
            engine.colorize_bytes, layout, frame, hints, choice
        )
        headers = {**layout.headers(_header_safe(name)), **extra}
        return Response(data, media_type="application/octet-stream", headers=headers)

    @app.post("/detect", response_model=Detected, responses=ERRORS, openapi_extra=_DETECT_BODY)
    async def detect(request: Request, query: Annotated[DetectQuery, Query()]) -> dict:
        """Which task the frame is (line art or grayscale), as a request without model
        and task would detect it; 1-3 frames of a sequence are decided together."""
        layout = _layout(query, config.max_pixels)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            async with request.form(max_files=SEQUENCE_FRAMES, max_fields=SEQUENCE_FRAMES) as form:
                parts = form.getlist("frame")
                if not parts:
                    raise InputError("multipart part 'frame' is missing")
                if any(not isinstance(p, UploadFile) for p in parts):
                    raise InputError(
                        "multipart part 'frame' came as a text field: send it as a file part "
                        "(give it a filename in its Content-Disposition)"
                    )
                raw = [await p.read() for p in parts]
        elif ctype == "application/octet-stream":
            raw = [await _read_raw(request, layout, "body")]
        else:
            raise InputError(
                f"Content-Type {ctype or 'missing'!r}: send the raw frame as "
                f"application/octet-stream, or multipart/form-data with 1-{SEQUENCE_FRAMES} "
                "'frame' parts"
            )

        def work() -> dict:
            frames = (layout.decode(data, f"frame {i}") for i, data in enumerate(raw))
            detection = detect_sequence(frames)
            try:
                model = read_model_info(engine.default_path(detection.task)).name
            except ModelError:
                model = None
            return {**detection.as_dict(), "model": model}

        return await run_in_threadpool(work)

    # -- jobs over uploaded frames ------------------------------------------------
    @app.post(
        "/jobs", response_model=JobStatus, response_model_exclude_unset=True, responses=ERRORS
    )
    async def create_job(spec: JobRequest) -> dict:
        """A batch job over ``frame_count`` frames; upload them with PUT, then poll."""
        layout = _layout(spec, config.max_pixels)
        choice = await run_in_threadpool(engine.choose, spec)
        model = await run_in_threadpool(engine.load, choice.path) if choice.path else None
        if spec.keyframes and model is None:
            raise InputError(
                "keyframes: give 'task' or 'model' with them (POST /detect tells the task)"
            )
        slots = _keyframe_slots(spec, model.info.task, config.max_pixels) if model else []

        def work(job: Job) -> None:
            nonlocal model
            if slots:  # a shot from keyframes (the model is known: see above)
                options = engine.options_for(choice, model)
                _run_keyframes_job(engine, jobs, job, model, options, spec.carry)
                return
            hints_layout = layout.hints_layout()
            if model is None:  # no model, no task: detected once, from the first frames
                path = engine.detect_path(
                    layout.decode(job.inputs[i], f"frame {i}")
                    for i in range(job.total)
                    if job.inputs[i] is not None
                )
                model = engine.load(path)
                job.model_name = model.info.name

            def frames() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
                for i in range(job.total):
                    if job.cancel.is_set():
                        return
                    data, hints = jobs.take_input(job, i)
                    yield (
                        layout.decode(data, f"frame {i}"),
                        hints_layout.decode(hints, f"hints {i}") if hints is not None else None,
                    )

            options = engine.options_for(choice, model)
            for i, result in enumerate(engine.sequence(model, options, spec.carry, frames())):
                jobs.store_result(job, i, layout.encode(result))

        job = jobs.create_frames_job(
            layout, spec.frame_count, model.info.name if model else "", work, slots
        )
        return job.status()

    @app.put(
        "/jobs/{job_id}/frames/{index}",
        response_model=JobStatus,
        response_model_exclude_unset=True,
        openapi_extra=_RAW_BODY,
        responses=ERRORS,
    )
    async def put_frame(job_id: str, index: int, request: Request) -> dict:
        """Upload frame ``index`` (0-based); the job starts once every frame is there."""
        job = jobs.get(job_id)
        if job.layout is None:
            raise ConflictError(f"job {job_id} works on server-side files; it takes no frames")
        data = await _read_raw(request, job.layout, f"frame {index}")
        return jobs.put_frame(job_id, index, data)

    @app.put(
        "/jobs/{job_id}/hints/{index}",
        response_model=JobStatus,
        response_model_exclude_unset=True,
        openapi_extra=_RAW_BODY,
        responses=ERRORS,
    )
    async def put_hints(job_id: str, index: int, request: Request) -> dict:
        """Upload the hint image (RGBA u8) of frame ``index``, before that frame."""
        job = jobs.get(job_id)
        if job.layout is None:
            raise ConflictError(f"job {job_id} works on server-side files; it takes no hints")
        data = await _read_raw(request, job.layout.hints_layout(), f"hints {index}")
        return jobs.put_hints(job_id, index, data)

    @app.put(
        "/jobs/{job_id}/keyframes/{index}",
        response_model=JobStatus,
        response_model_exclude_unset=True,
        openapi_extra=_RAW_BODY,
        responses=ERRORS,
    )
    async def put_keyframe(job_id: str, index: int, request: Request) -> dict:
        """Upload keyframe ``index`` (0-based) in the layout its spec gave."""
        return await _put_keyframe(job_id, index, request, structure=False)

    @app.put(
        "/jobs/{job_id}/keyframes/{index}/structure",
        response_model=JobStatus,
        response_model_exclude_unset=True,
        openapi_extra=_RAW_BODY,
        responses=ERRORS,
    )
    async def put_keyframe_structure(job_id: str, index: int, request: Request) -> dict:
        """Upload the uncolored frame keyframe ``index`` colors (the job's frame layout)."""
        return await _put_keyframe(job_id, index, request, structure=True)

    async def _put_keyframe(job_id: str, index: int, request: Request, structure: bool) -> dict:
        layout = jobs.keyframe_upload(job_id, index, structure)  # checked before the body
        what = f"keyframe {index}" + (" structure" if structure else "")
        data = await _read_raw(request, layout, what)
        return jobs.put_keyframe(job_id, index, data, structure)

    @app.get(
        "/jobs/{job_id}",
        response_model=JobStatus,
        response_model_exclude_unset=True,
        responses=ERRORS,
    )
    async def job_status(job_id: str) -> dict:
        """State and progress of a job."""
        return jobs.status(job_id)

    @app.get("/jobs/{job_id}/frames/{index}", response_class=Response, responses=_FRAME_RESPONSE)
    async def job_frame(job_id: str, index: int) -> Response:
        """Result frame ``index`` (404 until it is done)."""
        job, data = jobs.result(job_id, index)
        return Response(
            data,
            media_type="application/octet-stream",
            headers=job.layout.headers(_header_safe(job.model_name)),
        )

    @app.delete(
        "/jobs/{job_id}",
        response_model=JobStatus,
        response_model_exclude_unset=True,
        responses=ERRORS,
    )
    async def delete_job(job_id: str) -> dict:
        """Cancel a job (stops between frames), or forget it once it has finished."""
        return jobs.delete(job_id)

    # -- jobs over server-side files ----------------------------------------------
    #: the outputs (files, video frame folders, videos) that running files jobs write: a
    #: second job writing any of them is refused, not left to overwrite the first's frames
    busy_outs: set[Path] = set()
    busy_lock = threading.Lock()

    @app.post(
        "/jobs/files",
        response_model=JobStatus,
        response_model_exclude_unset=True,
        responses={403: {"model": ErrorBody, "description": "path outside --root"}, **ERRORS},
    )
    async def files_job(spec: FilesJobRequest) -> dict:
        """Colorize server-side files under ``--root`` into ``out`` (under it too).

        Runs engine.batch.colorize_many (with ``references``: engine.shot.colorize_shot):
        outputs are written atomically, existing ones are skipped (a re-run resumes),
        inputs are never overwritten.
        """
        inputs = [resolve_under_root(p, config.root, "inputs") for p in spec.inputs]
        out = resolve_under_root(spec.out, config.root, "out")
        hints = resolve_under_root(spec.hints, config.root, "hints") if spec.hints else None
        choice = await run_in_threadpool(engine.choose, spec)
        sources, total, targets = await run_in_threadpool(
            _plan_files, inputs, out, config.root, hints
        )
        keyframes = None
        if spec.references:
            if hints is not None:
                raise InputError(
                    "hints and references do not combine: paint the colors into a keyframe instead"
                )
            refs = [resolve_under_root(p, config.root, "references") for p in spec.references]
            files = await run_in_threadpool(_reference_files, refs, config.root)
            keyframes = await run_in_threadpool(load_keyframes, files, config.max_pixels)
        path = choice.path
        if path is None:  # one task for the whole run, from its first frames (as the CLI)
            detection = await run_in_threadpool(detect_sources, sources, config.max_pixels)
            path = engine.default_path(detection.task if detection else None)
        model = await run_in_threadpool(engine.load, path)
        options = engine.options_for(choice, model)

        def work(job: Job) -> None:
            if keyframes is not None:  # a shot: frames in order, each from the keyframes
                colorize_shot(
                    sources,
                    out,
                    model,
                    keyframes,
                    options,
                    use_previous=spec.carry,
                    overwrite=spec.overwrite,
                    progress=False,
                    on_frame=lambda frame: jobs.progress(job, frame.index + 1),
                    cancel=job.cancel,
                    max_pixels=config.max_pixels,
                    root=config.root,
                )
                jobs.progress(job, job.total)
                return
            result = colorize_many(
                sources,
                out,
                model,
                options,
                hints=hints,
                batch_size=spec.batch_size,
                carry=spec.carry,
                overwrite=spec.overwrite,
                progress=False,
                on_frame=lambda frame: jobs.progress(job, frame.index + 1),
                cancel=job.cancel,
                root=config.root,
                fail_fast=False,
                max_pixels=config.max_pixels,
            )
            jobs.progress(job, job.total)
            if result.failed:  # every good frame is written; the job says which failed
                more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
                raise InputError(
                    f"{len(result.failed)} of {job.total} frames failed, the others are "
                    f"written: {result.failed[0]}{more}"
                )

        def release() -> None:
            with busy_lock:
                busy_outs.difference_update(targets)

        def run(job: Job) -> None:
            try:
                work(job)
            finally:
                release()

        with busy_lock:
            clash = sorted(busy_outs & targets)
            if clash:
                raise ConflictError(
                    f"out: {clash[0].name!r} in {spec.out!r} is being written by another "
                    "running files job: wait for it (or DELETE it), or choose another output"
                )
            busy_outs.update(targets)
        try:
            job = jobs.create_files_job(total, model.info.name, run)
        except BaseException:
            release()
            raise
        return job.status()

    add_training_routes(app, config, train_jobs)
    return app


#: errno values of an OSError that a client's path causes (400, not 500).
_PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EILSEQ})


def _path_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every HTTP method of the request's path, as the API description lists them.

    A literal path outranks a template that also matches it (/jobs/files is POST only,
    though /jobs/{job_id} would match it too): the methods of the matching routes with
    the fewest path parameters.
    """
    by_template: dict[str, tuple[int, set[str]]] = {}
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            params = len(getattr(route, "param_convertors", {}))
            entry = by_template.setdefault(route.path, (params, set()))
            entry[1].update(route.methods)
    if not by_template:
        return []
    fewest = min(p for p, _ in by_template.values())
    return sorted(set().union(*(m for p, m in by_template.values() if p == fewest)))


def _header_safe(text: str) -> str:
    """HTTP headers are latin-1: keep printable ASCII, replace the rest with '?'."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _plan_files(
    inputs: list[Path], out: Path, root: Path | None, hints: Path | None = None
) -> tuple[list[Any], int, frozenset[Path]]:
    """Expand files / folders / globs, check every match still lies under ``root`` (a
    symlink may point out of it), and so does every file of a hints folder and every
    planned output; check the output plan; -> (sources, frame count, the resolved
    outputs: image files, video frame folders, an output video)."""
    assert root is not None
    real_root = root.resolve()
    sources = expand_inputs([str(p) for p in inputs])
    for src in sources:
        check_under_root(src.path, real_root, "inputs")
    if hints is not None:
        HintSource(hints, root=real_root)  # 403 now rather than a failed job later
    plan = plan_outputs(sources, out)  # refuses overwriting an input, clashing names...
    # an output file or a video's frame folder inside ``out`` may be a symlink out of root
    planned = [*plan.image_outputs.values(), *plan.video_folders.values()]
    if plan.mode == "video":
        planned.append(plan.out)
    targets = frozenset(t.resolve() for t in planned)
    for target in targets:
        check_under_root(target, real_root, "out")
    total = sum(count_video_frames(s.path) if s.is_video else 1 for s in sources)
    return sources, total, targets


def run_server(config: ServerConfig) -> None:
    """Serve ``config`` with uvicorn until interrupted (refuses unsafe binds first)."""
    import uvicorn

    check_bind(config.host, config.token)
    app = create_app(config)
    log.info("InkHue engine %s on http://%s:%d", __version__, config.host, config.port)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")


__all__ = [
    "ServerConfig",
    "create_app",
    "check_bind",
    "is_loopback",
    "resolve_under_root",
    "run_server",
]
