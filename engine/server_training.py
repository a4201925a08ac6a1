"""Fine-tuning through the server: ``/train`` (docs/HTTP_API.md, "Training").

The request is checked like ``inkhue finetune`` checks it (engine/finetune_spec.py: no
torch in the server), then ``inkhue finetune`` runs in a subprocess (server_jobs'
TrainRegistry). Uploaded frames are written to a temporary work folder that belongs to
the job; a server-side ``data`` folder must lie under ``--root``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from inkhue_engine import finetune_spec
from inkhue_engine.errors import ForbiddenError, InputError
from inkhue_engine.model import user_models_dir
from inkhue_engine.server_jobs import ConflictError, TrainRegistry, UnavailableError
from inkhue_engine.server_schemas import ERRORS, ErrorBody, JsonBody, ServerPath
from inkhue_engine.server_security import resolve_under_root

if TYPE_CHECKING:
    from inkhue_engine.server import ServerConfig


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
    lr: float | None = Field(
        None, gt=0, le=1, description="learning rate (1e-3 from the grayscale base, 1e-4 line art)"
    )
    crop_size: int | None = Field(
        None, ge=16, le=1024, description="training crop, px (the base's training size)"
    )
    batch_size: int | None = Field(None, ge=1, le=256, description="crops per step (8)")
    palette_colors: int | None = Field(
        None, ge=1, le=64, description="fill colors kept in the studio palette (16)"
    )
    palette: StrictBool = Field(True, description="store the studio palette in the model")
    hold_out: int | None = Field(
        None,
        ge=0,
        le=8,
        description="frames held out for the check in the model card "
        "(default: 1 from 10 frames, 2 from 24)",
    )
    overwrite: StrictBool = Field(False, description="replace a user model of the same name")


class TrainFilesRequest(TrainOptions):
    """JSON body of POST /train over a server-side folder of frames (under --root)."""

    data: ServerPath = Field(description="folder of colored frames, absolute or relative to --root")


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
        raise InputError(f'{where}: expected a JSON object, e.g. {{"name": "studio"}}')
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
    spec: TrainOptions,
    data: Path,
    workdir: Path,
    config: ServerConfig,
    registry: TrainRegistry,
    root: Path | None = None,
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
        defaults = {"steps": ft.DEFAULT_STEPS, "lr": dict(ft.DEFAULT_LR_BY_TASK),
                    "batch_size": ft.DEFAULT_BATCH, "palette_colors": ft.DEFAULT_PALETTE_COLORS,
                    "min_frames": ft.MIN_FRAMES}  # fmt: skip
    return {"available": error is None, "error": error, "bases": bases, "defaults": defaults,
            "jobs": registry.statuses()}  # fmt: skip


def add_training_routes(app: FastAPI, config: ServerConfig, train_jobs: TrainRegistry) -> None:
    """Add the /train routes to ``app``, a server with ``config`` and its training registry
    (on the app itself, not an included router: the 405 handler reads the app's routes)."""

    @app.get("/train", response_model=TrainInfo, responses=ERRORS)
    async def train_info() -> dict:
        """Whether this server can fine-tune, its base models, defaults and jobs."""
        return await run_in_threadpool(_train_info, train_jobs)

    @app.post("/train", response_model=TrainStatus, response_model_exclude_unset=True,
              openapi_extra=_TRAIN_BODY,
              responses={403: {"model": ErrorBody, "description": "data outside --root"},
                         409: {"model": ErrorBody, "description": "a fine-tuning runs, or "
                               "the model name is taken"}, **ERRORS})  # fmt: skip
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
                            'as JSON, e.g. {"name": "studio", "base": "grayscale"}'
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

    @app.get(
        "/train/{job_id}",
        response_model=TrainStatus,
        response_model_exclude_unset=True,
        responses=ERRORS,
    )
    async def train_status(job_id: str) -> dict:
        """State, step / total, last losses, error, and the model's name once done."""
        return train_jobs.status(job_id)

    @app.delete(
        "/train/{job_id}",
        response_model=TrainStatus,
        response_model_exclude_unset=True,
        responses=ERRORS,
    )
    async def cancel_train(job_id: str) -> dict:
        """Cancel a running fine-tuning (its subprocess stops, its temp files are
        removed, no model is written), or forget a finished one."""
        return await run_in_threadpool(train_jobs.delete, job_id)
