"""The engine's local HTTP service, ``inkhue serve`` (API: docs/HTTP_API.md).

``create_app(ServerConfig(...))`` builds the FastAPI app; ``inkhue serve`` runs it
with uvicorn. Frames travel as raw pixels (server_frames.PixelLayout), batch jobs
live in an in-memory registry (server_jobs.JobRegistry).

Safety: bound to loopback by default, where a request must also be *addressed* to
loopback (its Host header), which stops web pages from reaching the server through
DNS rebinding. Binding anywhere else needs a token (``check_bind``); with a token,
every request needs ``Authorization: Bearer <token>``, except /health and the API
description on a loopback-bound server. Request bodies are counted while they stream
in and refused (413) past ``max_body_bytes``, before they are held in memory.
Inference runs in worker threads (ONNX Runtime releases the GIL), at most
``inference_slots`` at a time, shared by single requests and jobs (a click in Krita
waits for at most one batch frame).
"""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import sys
import tempfile
import threading
import typing
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
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from inkhue_engine import __version__, finetune_spec
from inkhue_engine.batch import (
    CarrySettings,
    HintSource,
    colorize_many,
    colorize_sequence,
    plan_outputs,
)
from inkhue_engine.errors import ForbiddenError, InkHueError, InputError, ModelError
from inkhue_engine.frames_io import DEFAULT_MAX_PIXELS, count_video_frames, expand_inputs
from inkhue_engine.model import (
    Model,
    list_models,
    load_model,
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
    NotFoundError,
    TrainRegistry,
    UnavailableError,
)
from inkhue_engine.server_security import (
    GuardMiddleware,
    check_bind,
    is_loopback,
    json_error,
    resolve_under_root,
)

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
    ``inference_slots``: inferences run at the same time (1 suits a CPU; more can
    help a GPU). ``preload``: load the default models at startup so that /health
    already names the provider in use and the first click is fast.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    root: Path | None = None
    models_dirs: tuple[Path, ...] = ()
    device: str = "auto"
    max_body_bytes: int = 512 * MiB
    max_pixels: int = DEFAULT_MAX_PIXELS
    inference_slots: int = 1
    max_jobs: int = 16
    max_job_bytes: int = 4096 * MiB
    job_ttl_s: float = 3600.0
    preload: bool = False


# --------------------------------------------------------------------------- schemas


class ErrorBody(BaseModel):
    """Every error answer: one line that names the field / file and what to do."""

    error: str


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


HexColor = Annotated[str, Field(pattern=r"^#?[0-9a-fA-F]{6}$", examples=["#ff0000"])]
#: A server-side path as a client sends it: not empty, no NUL byte.
#: (The pattern is checked by resolve_under_root, whose message says what is wrong.)
ServerPath = Annotated[str, Field(min_length=1, json_schema_extra={"pattern": "^[^\\u0000]+$"})]


def _is_number(annotation: Any) -> bool:
    """Whether a field's type is int or float (or one of them | None)."""
    if annotation in (int, float):
        return True
    return any(a in (int, float) for a in typing.get_args(annotation))


class JsonBody(BaseModel):
    """A JSON request body: its numbers must be JSON numbers.

    Pydantic's lax mode takes ``true`` and ``"5"`` for an int, which the API description
    does not allow (and a client that sends them has a bug worth hearing about). 2.0 for
    an int stays accepted: JSON Schema counts it as an integer.
    """

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, (bool, str)) and _is_number(field.annotation):
                    raise ValueError(f"{name!r} must be a JSON number, got {value!r}")
        return data


class Options(BaseModel):
    """Colorize options shared by /colorize (as query parameters) and the jobs (as JSON)."""

    model: str | None = Field(
        None, description="model name as listed by /models; default: the bundled model of task"
    )
    task: Literal["grayscale", "lineart"] | None = Field(
        None, description="used to pick the default model when model is absent"
    )
    detail: float = Field(
        1.0, gt=0, description="working short side = the model's train_size x detail (> 0; "
        "above 1 for finer detail, below 1 for speed or memory)"
    )
    regions: StrictBool = Field(True, description="make each region between lines one color")
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
    palette: str | None = Field(
        None, min_length=1, max_length=16 * MAX_PALETTE_COLORS,
        description=f"JSON list of 1-{MAX_PALETTE_COLORS} sRGB hex colors, e.g. "
        "[\"#ff0000\",\"#00ff00\"]; 'none' turns off the model's own palette; absent: the "
        "model's palette, if any",
    )


class JobRequest(JsonBody, Options, Layout):
    """Body of POST /jobs."""

    frame_count: int = Field(ge=1, le=MAX_JOB_FRAMES, description="frames in the job "
                             "(a longer sequence: several jobs)")
    carry: StrictBool = Field(
        True, description="the frames are one sequence: carry colors from frame to frame "
        "where the picture did not change (less flicker)"
    )


class JobStatus(BaseModel):
    id: str
    state: Literal["uploading", "running", "done", "cancelled", "failed"]
    done: int
    total: int
    error: str | None
    forgotten: bool | None = Field(None, description="DELETE only: the job is gone")


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
        None, description="under --root: one RGBA hint image for all frames, or a folder of "
        "hint images named like the frames"
    )
    batch_size: int = Field(4, ge=1, le=64)
    carry: StrictBool = Field(True, description="carry colors between frames of a sequence")
    overwrite: StrictBool = Field(False, description="redo outputs that exist (else: skip them)")


class TrainOptions(JsonBody):
    """Options of a fine-tuning (``POST /train``); absent ones take inkhue finetune's defaults."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        # finetune_spec.check_model_name checks it, with a message that says what to do
        json_schema_extra={"pattern": r"^\s*[A-Za-z0-9][A-Za-z0-9._ -]{0,63}(\.onnx)?\s*$"},
        description="name of the new model (and its file name in the user models folder): "
        "1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit",
    )
    base: Literal["grayscale", "lineart"] = Field(
        "grayscale", description="the shipped base model to start from"
    )
    steps: int | None = Field(None, ge=1, le=100_000, description="training steps (300)")
    lr: float | None = Field(None, gt=0, le=1, description="learning rate (1e-4)")
    crop_size: int | None = Field(
        None, ge=16, le=1024, description="training crop, px (the base's training size)"
    )
    batch_size: int | None = Field(None, ge=1, le=256, description="crops per step (8)")
    palette_colors: int | None = Field(
        None, ge=1, le=64, description="fill colors kept in the studio palette (16)"
    )
    palette: StrictBool = Field(True, description="store the studio palette in the model")
    hold_out: int | None = Field(
        None, ge=0, le=8, description="frames held out for the check in the model card "
        "(default: 1 from 10 frames, 2 from 24)"
    )
    overwrite: StrictBool = Field(False, description="replace a user model of the same name")


class TrainFilesRequest(TrainOptions):
    """JSON body of POST /train over a server-side folder of frames (under --root)."""

    data: ServerPath = Field(
        description="folder of colored frames, absolute or relative to --root"
    )


class TrainStatus(BaseModel):
    id: str
    name: str
    state: Literal["running", "done", "cancelled", "failed"]
    phase: Literal["starting", "training", "export", "check", "finished"]
    step: int
    total: int
    losses: dict[str, float] | None = Field(
        description="last logged losses: loss_d, loss_g, l1, adv, img_s"
    )
    error: str | None
    model: str | None = Field(description="name of the new model (in GET /models) once done")
    palette: list[str] | None
    held_out_check: dict[str, float] | None = Field(
        description="mean CIEDE2000 on held-out frames: base, finetuned (+palette)"
    )
    seconds: float
    forgotten: bool | None = Field(None, description="DELETE only: the job is gone")


class TrainBase(BaseModel):
    name: str
    installed: bool
    task: str | None = None
    train_size: int | None = None


class TrainInfo(BaseModel):
    available: bool = Field(description="whether this server can fine-tune")
    error: str | None = Field(description="why not, and what to install")
    bases: list[TrainBase]
    defaults: dict[str, Any]
    jobs: list[TrainStatus]


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "bad request (names the field)"),
        (401, "token missing or wrong"),
        (404, "unknown job, frame or model"),
        (413, "body, frame or job over the server's limits"),
        (422, "model file breaks the model contract"),
        (500, "internal error"),
        (501, "fine-tuning is not available on this server (says what to install)"),
        (429, "the server holds too many jobs or too much job memory now: retry later"),
        (507, "out of memory"),
    )
}
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
    )
}
_FRAME_RESPONSE = {
    200: {
        "description": "the result frame: raw pixels in the request's depth and order",
        "content": {"application/octet-stream": _BINARY},
        "headers": _FRAME_HEADERS,
    },
    **_ERRORS,
}
_RAW_BODY = {
    "requestBody": {
        "required": True,
        "description": "raw pixels (see the pixel layout in docs/HTTP_API.md)",
        "content": {"application/octet-stream": _BINARY},
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

    path: Path
    options: ColorizeOptions  #: palette not applied yet (see Engine.options_for)
    palette: tuple[str, ...] | None  #: None: the model's own; (): none at all


class Engine:
    """The server's link to the engine: model lookup and loading, guarded inference."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.slots = threading.BoundedSemaphore(max(1, config.inference_slots))
        self.providers: list[str] | None = None

    def model_names(self) -> list[str]:
        return [m.name for m in list_models(self.config.models_dirs)]

    def choose(self, opts: Options) -> _Choice:
        """Resolve the options' model and check the options, before anything heavy runs.

        Clients name models only (never server paths): a name matches a model's name or
        its file name without '.onnx', among the folders /models lists.
        """
        options = ColorizeOptions(detail=opts.detail, regions=opts.regions, output=opts.output)
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

    def colorize(self, frame: np.ndarray, model: Model, hints: np.ndarray | None,
                 options: ColorizeOptions) -> np.ndarray:
        """One frame through the pipeline, holding an inference slot."""
        with self.slots:
            return colorize_frame(frame, model, hints=hints, options=options)

    def colorize_bytes(
        self, layout: PixelLayout, frame: bytes, hints: bytes | None, choice: _Choice
    ) -> tuple[bytes, str]:
        """Raw frame (+ raw hints) -> raw result and the model's name (runs in a thread)."""
        pixels = layout.decode(frame, "frame")
        hint_img = layout.hints_layout().decode(hints, "hints") if hints is not None else None
        model = self.load(choice.path)
        result = self.colorize(pixels, model, hint_img, self.options_for(choice, model))
        return layout.encode(result), model.info.name

    def sequence(
        self, model: Model, options: ColorizeOptions, carry: bool,
        frames: Iterator[tuple[np.ndarray, np.ndarray | None]],
    ) -> Iterator[np.ndarray]:
        """Colorize consecutive frames of one sequence, in order, carrying colors from
        the previous result where the input did not change (engine.batch's
        colorize_sequence), each frame holding an inference slot."""
        return colorize_sequence(
            frames, lambda frame, hints: self.colorize(frame, model, hints, options),
            CarrySettings(enabled=carry),
        )


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


# --------------------------------------------------------------------------- training


#: Most frames one POST /train may upload.
MAX_TRAIN_FRAMES = 2000
_FRAME_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"\xff\xd8\xff", ".jpg"),
)
_TRAIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["frames", "options"],
                    "properties": {
                        "frames": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": finetune_spec.MIN_FRAMES,
                            "maxItems": MAX_TRAIN_FRAMES,
                            "description": "colored frames as PNG, TIFF, JPEG or WebP files, "
                            "one file part each (in order)",
                        },
                        "options": {
                            "$ref": "#/components/schemas/TrainOptions",
                            "description": "the training options as a JSON part",
                        },
                    },
                },
                "encoding": {
                    "frames": {"contentType": "application/octet-stream"},
                    "options": {"contentType": "application/json"},
                },
            },
            "application/json": {
                "schema": {"$ref": "#/components/schemas/TrainFilesRequest"},
            },
        },
    }
}


def _training_ready() -> Any:
    """The fine-tuning checks when this server can fine-tune; UnavailableError (501) if not."""
    ft = finetune_spec
    missing = ft.training_missing()
    if missing:
        raise UnavailableError(missing)
    return ft


def _validation_message(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err.get("loc", ())) or "body"
        lines.append(f"{where} {field!r}: {err.get('msg', 'invalid')}")
    return "; ".join(lines) or f"invalid {where}"


def _parse_train_options(raw: Any, model: type[TrainOptions], where: str) -> TrainOptions:
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InputError(f"{where}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a JSON object, e.g. {{\"name\": \"studio\"}}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InputError(_validation_message(exc, f"{where} field")) from None


def _frame_suffix(data: bytes, index: int, filename: str | None) -> str:
    for magic, ext in _FRAME_MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    raise InputError(
        f"frames part {index} ({filename or 'no file name'}): not a PNG, TIFF, JPEG or WebP "
        f"file: send each frame as an encoded image file"
    )


def _save_frames(parts: list[tuple[bytes, str | None]], folder: Path) -> None:
    """Write uploaded frames as 0000_<name>.<ext> (upload order; client names sanitized)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (data, filename) in enumerate(parts):
        ext = _frame_suffix(data, i, filename)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename or "frame").stem)[:40].lstrip(".")
        (folder / f"{i:04d}_{stem or 'frame'}{ext}").write_bytes(data)


def _device_flag(device: str) -> str:
    """The torch device of a fine-tuning, from the server's ONNX Runtime --device."""
    if device in ("cpu",):
        return "cpu"
    if device in ("cuda", "tensorrt"):
        return "cuda"
    return "auto"


def _start_training(
    spec: TrainOptions, data: Path, workdir: Path, config: ServerConfig,
    registry: TrainRegistry, root: Path | None = None,
) -> dict:
    """Check a fine-tuning request like ``inkhue finetune`` does, then start it.

    ``root``: every frame of a server-side ``data`` folder must lie under it (symlinks
    resolved). ``workdir`` belongs to the job once it has started.
    """
    ft = _training_ready()
    name = ft.check_model_name(spec.name)
    busy = registry.running()
    if busy is not None:
        raise ConflictError(
            f"a fine-tuning is already running (job {busy.id}, model {busy.name!r}): wait "
            f"for it, or cancel it with DELETE /train/{busy.id}"
        )
    base_path = ft.resolve_base(spec.base)
    side = ft.base_sidecar(base_path) or {}
    crop = spec.crop_size or int(side.get("train_size") or 128)
    frames = ft.check_frames(data, crop, label=None if root is not None else "uploaded frames")
    if root is not None:
        root = root.resolve()
        for f in frames.files:
            if not f.resolve().is_relative_to(root):
                raise ForbiddenError(f"data: {frames.rel(f)!r} links outside the server's --root")
    if spec.hold_out is not None and len(frames.files) - spec.hold_out < ft.MIN_FRAMES:
        raise InputError(
            f"hold_out {spec.hold_out}: leaves {len(frames.files) - spec.hold_out} of "
            f"{len(frames.files)} frames to train on (at least {ft.MIN_FRAMES})"
        )
    folder = user_models_dir()
    out = folder / f"{name}.onnx"
    if not spec.overwrite and (out.exists() or out.with_suffix(".md").exists()):
        raise ConflictError(
            f"name: a model {name!r} exists in the user models folder: choose another name, "
            f"or send overwrite: true"
        )
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "inkhue_engine.cli", "finetune",
        "--data", str(data), "--base", str(base_path), "-o", str(out), "--name", name,
        "--device", _device_flag(config.device), "--work-dir", str(workdir),
        "--progress-jsonl", "-", "--quiet", "--stop-on-stdin-eof",
    ]  # fmt: skip
    for flag, value in (("--steps", spec.steps), ("--lr", spec.lr),
                        ("--crop-size", spec.crop_size), ("--batch-size", spec.batch_size),
                        ("--palette-colors", spec.palette_colors),
                        ("--hold-out", spec.hold_out)):  # fmt: skip
        if value is not None:
            argv += [flag, str(value)]
    if not spec.palette:
        argv.append("--no-palette")
    if spec.overwrite:
        argv.append("--overwrite")
    job = registry.start(name, argv, workdir, total=spec.steps or ft.DEFAULT_STEPS)
    return registry.status(job.id)


def _train_info(registry: TrainRegistry) -> dict:
    ft, error = None, None
    try:
        ft = _training_ready()
    except UnavailableError as exc:
        error = str(exc)
    bases = []
    if ft is not None:
        folder = ft.base_checkpoints_dir()
        for b in ft.BASES:
            path = folder / f"{b}.pt"
            side = ft.base_sidecar(path) or {} if path.is_file() else {}
            bases.append({"name": b, "installed": path.is_file(), "task": side.get("task"),
                          "train_size": side.get("train_size")})  # fmt: skip
        if not any(b["installed"] for b in bases):
            error = (f"no base checkpoint is installed in {folder}: fine-tuning needs "
                     f"grayscale.pt or lineart.pt there")  # fmt: skip
    defaults = {}
    if ft is not None:
        defaults = {"steps": ft.DEFAULT_STEPS, "lr": ft.DEFAULT_LR,
                    "batch_size": ft.DEFAULT_BATCH, "palette_colors": ft.DEFAULT_PALETTE_COLORS,
                    "min_frames": ft.MIN_FRAMES}  # fmt: skip
    return {"available": error is None, "error": error, "bases": bases, "defaults": defaults,
            "jobs": registry.statuses()}  # fmt: skip


# --------------------------------------------------------------------------- app


def create_app(config: ServerConfig) -> FastAPI:
    """The FastAPI app of ``inkhue serve`` (see the module docstring and docs/HTTP_API.md)."""
    engine = Engine(config)
    jobs = JobRegistry(
        JobLimits(
            max_jobs=config.max_jobs, max_bytes=config.max_job_bytes, ttl_s=config.job_ttl_s
        )
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
    @app.get("/health", response_model=Health, responses=_ERRORS)
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

    @app.get("/models", response_model=list[ModelEntry], responses=_ERRORS)
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
    async def colorize(
        request: Request, query: Annotated[ColorizeQuery, Query()]
    ) -> Response:
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
        data, name = await run_in_threadpool(engine.colorize_bytes, layout, frame, hints, choice)
        return Response(data, media_type="application/octet-stream",
                        headers=layout.headers(_header_safe(name)))

    # -- jobs over uploaded frames ------------------------------------------------
    @app.post("/jobs", response_model=JobStatus, response_model_exclude_unset=True,
              responses=_ERRORS)
    async def create_job(spec: JobRequest) -> dict:
        """A batch job over ``frame_count`` frames; upload them with PUT, then poll."""
        layout = _layout(spec, config.max_pixels)
        choice = await run_in_threadpool(engine.choose, spec)
        model = await run_in_threadpool(engine.load, choice.path)
        def work(job: Job) -> None:
            hints_layout = layout.hints_layout()

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

        job = jobs.create_frames_job(layout, spec.frame_count, model.info.name, work)
        return job.status()

    @app.put("/jobs/{job_id}/frames/{index}", response_model=JobStatus,
             response_model_exclude_unset=True, openapi_extra=_RAW_BODY, responses=_ERRORS)
    async def put_frame(job_id: str, index: int, request: Request) -> dict:
        """Upload frame ``index`` (0-based); the job starts once every frame is there."""
        job = jobs.get(job_id)
        if job.layout is None:
            raise ConflictError(f"job {job_id} works on server-side files; it takes no frames")
        data = await _read_raw(request, job.layout, f"frame {index}")
        return jobs.put_frame(job_id, index, data)

    @app.put("/jobs/{job_id}/hints/{index}", response_model=JobStatus,
             response_model_exclude_unset=True, openapi_extra=_RAW_BODY, responses=_ERRORS)
    async def put_hints(job_id: str, index: int, request: Request) -> dict:
        """Upload the hint image (RGBA u8) of frame ``index``, before that frame."""
        job = jobs.get(job_id)
        if job.layout is None:
            raise ConflictError(f"job {job_id} works on server-side files; it takes no hints")
        data = await _read_raw(request, job.layout.hints_layout(), f"hints {index}")
        return jobs.put_hints(job_id, index, data)

    @app.get("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_unset=True,
             responses=_ERRORS)
    async def job_status(job_id: str) -> dict:
        """State and progress of a job."""
        return jobs.status(job_id)

    @app.get("/jobs/{job_id}/frames/{index}", response_class=Response,
             responses=_FRAME_RESPONSE)
    async def job_frame(job_id: str, index: int) -> Response:
        """Result frame ``index`` (404 until it is done)."""
        job, data = jobs.result(job_id, index)
        return Response(data, media_type="application/octet-stream",
                        headers=job.layout.headers(_header_safe(job.model_name)))

    @app.delete("/jobs/{job_id}", response_model=JobStatus, response_model_exclude_unset=True,
                responses=_ERRORS)
    async def delete_job(job_id: str) -> dict:
        """Cancel a job (stops between frames), or forget it once it has finished."""
        return jobs.delete(job_id)

    # -- jobs over server-side files ----------------------------------------------
    @app.post("/jobs/files", response_model=JobStatus, response_model_exclude_unset=True,
              responses={403: {"model": ErrorBody, "description": "path outside --root"},
                         **_ERRORS})
    async def files_job(spec: FilesJobRequest) -> dict:
        """Colorize server-side files under ``--root`` into ``out`` (under it too).

        Runs engine.batch.colorize_many: outputs are written atomically, existing ones
        are skipped (a re-run resumes), inputs are never overwritten.
        """
        inputs = [resolve_under_root(p, config.root, "inputs") for p in spec.inputs]
        out = resolve_under_root(spec.out, config.root, "out")
        hints = resolve_under_root(spec.hints, config.root, "hints") if spec.hints else None
        choice = await run_in_threadpool(engine.choose, spec)
        sources, total = await run_in_threadpool(_plan_files, inputs, out, config.root, hints)
        model = await run_in_threadpool(engine.load, choice.path)
        options = engine.options_for(choice, model)

        def work(job: Job) -> None:
            result = colorize_many(
                sources, out, model, options, hints=hints, batch_size=spec.batch_size,
                carry=spec.carry, overwrite=spec.overwrite, progress=False,
                on_frame=lambda frame: jobs.progress(job, frame.index + 1), cancel=job.cancel,
                root=config.root, fail_fast=False, max_pixels=config.max_pixels,
            )
            jobs.progress(job, job.total)
            if result.failed:  # every good frame is written; the job says which failed
                more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
                raise InputError(
                    f"{len(result.failed)} of {job.total} frames failed, the others are "
                    f"written: {result.failed[0]}{more}"
                )

        job = jobs.create_files_job(total, model.info.name, work)
        return job.status()

    # -- training (fine-tuning on a studio's frames) ------------------------------
    @app.get("/train", response_model=TrainInfo, responses=_ERRORS)
    async def train_info() -> dict:
        """Whether this server can fine-tune, its base models, defaults and jobs."""
        return await run_in_threadpool(_train_info, train_jobs)

    @app.post("/train", response_model=TrainStatus, response_model_exclude_unset=True,
              openapi_extra=_TRAIN_BODY,
              responses={403: {"model": ErrorBody, "description": "data outside --root"},
                         409: {"model": ErrorBody, "description": "a fine-tuning runs, or "
                               "the model name is taken"}, **_ERRORS})  # fmt: skip
    async def start_train(request: Request) -> dict:
        """Fine-tune a base model on uploaded frames (multipart) or a server-side folder
        (JSON); the new model appears in GET /models when the job is done."""
        _training_ready()  # 501 before reading a big upload
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        workdir = Path(tempfile.mkdtemp(prefix="inkhue-train-"))
        try:
            if ctype == "multipart/form-data":
                async with request.form(max_files=MAX_TRAIN_FRAMES, max_fields=4) as form:
                    raw = form.get("options")
                    if isinstance(raw, UploadFile):
                        raw = await raw.read()
                    if raw is None:
                        raise InputError(
                            "multipart part 'options' is missing: send the training options "
                            "as JSON, e.g. {\"name\": \"studio\", \"base\": \"grayscale\"}"
                        )
                    spec = _parse_train_options(raw, TrainOptions, "options")
                    parts = []
                    for i, part in enumerate(form.getlist("frames")):
                        if not isinstance(part, UploadFile):
                            raise InputError(
                                f"frames part {i} came as a text field: send each frame as a "
                                f"file part (with a filename in its Content-Disposition)"
                            )
                        parts.append((await part.read(), part.filename))
                if not parts:
                    raise InputError("multipart part 'frames' is missing: upload the colored "
                                     "frames as file parts named 'frames'")  # fmt: skip
                data, root = workdir / "frames", None
                await run_in_threadpool(_save_frames, parts, data)
                del parts
            elif ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise InputError(f"body: not JSON ({exc})") from None
                spec = _parse_train_options(body, TrainFilesRequest, "JSON")
                data, root = resolve_under_root(spec.data, config.root, "data"), config.root
            else:
                raise InputError(
                    f"Content-Type {ctype or 'missing'!r}: send multipart/form-data with "
                    f"'frames' file parts and an 'options' JSON part, or JSON with 'data' "
                    f"(a folder under the server's --root)"
                )
            return await run_in_threadpool(
                _start_training, spec, data, workdir, config, train_jobs, root
            )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    @app.get("/train/{job_id}", response_model=TrainStatus, response_model_exclude_unset=True,
             responses=_ERRORS)
    async def train_status(job_id: str) -> dict:
        """State, step / total, last losses, error, and the model's name once done."""
        return train_jobs.status(job_id)

    @app.delete("/train/{job_id}", response_model=TrainStatus,
                response_model_exclude_unset=True, responses=_ERRORS)
    async def cancel_train(job_id: str) -> dict:
        """Cancel a running fine-tuning (its subprocess stops, its temp files are
        removed, no model is written), or forget a finished one."""
        return await run_in_threadpool(train_jobs.delete, job_id)

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
) -> tuple[list[Any], int]:
    """Expand files / folders / globs, check every match still lies under ``root`` (a
    symlink may point out of it), and so does every file of a hints folder; check the
    output plan; -> (sources, frame count)."""
    assert root is not None
    real_root = root.resolve()
    sources = expand_inputs([str(p) for p in inputs])
    for src in sources:
        if not src.path.resolve().is_relative_to(real_root):
            raise ForbiddenError(
                f"inputs: {src.path.name!r} links outside the server's --root folder"
            )
    if hints is not None:
        HintSource(hints, root=real_root)  # 403 now rather than a failed job later
    plan_outputs(sources, out)  # refuses overwriting an input, clashing names...
    total = sum(count_video_frames(s.path) if s.is_video else 1 for s in sources)
    return sources, total


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
