"""``inkhue finetune``: retrain a base model on a studio's own colored frames.

A few dozen colored frames of one production teach a base model (the shipped
``grayscale`` / ``lineart`` generator, or any training checkpoint) that production's
colors. The result is a normal InkHue ONNX model, written atomically into the user
models folder (``inkhue_engine.model.user_models_dir()``) so that the engine, the
server and the Krita docker list it at once, with the studio palette read from the
frames (``inkhue_engine.palette.extract_palette``) in its ``inkhue.palette`` metadata
(the engine's palette lock uses it by default) and a model card ``NAME.md`` beside it.

    inkhue finetune --data frames/ --base grayscale --name studio
    python -m inkhue_training.finetune pack-base runs/grayscale -o training/checkpoints/grayscale.pt

Base checkpoints ("shipped format", written by ``pack_base``): a torch file holding a
dict with ``format`` = BASE_FORMAT, ``format_version``, ``task``, ``generator_kwargs``,
``generator`` (the EMA generator's state dict), ``train_size``, ``name``,
``trained_on``, ``source`` (run folder and step) and, optionally,
``discriminator_kwargs`` / ``discriminator``; plus a JSON sidecar (same stem, ``.json``)
with the fields that need no torch to read. ``--base grayscale|lineart`` looks for
``<dir>/grayscale.pt`` in ``$INKHUE_BASE_CHECKPOINTS`` or ``training/checkpoints``.

This module imports torch only inside the functions that train. The torch-free checks
(frame sets, names, base lookup) live in ``inkhue_engine.finetune_spec``: the engine's
server checks a request with them, then runs ``inkhue finetune`` in a subprocess (the
engine never imports torch nor this package).
With ``--progress-jsonl`` the subprocess reports JSON lines (PROGRESS_EVENTS).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inkhue_engine.errors import InkHueError, InputError
from inkhue_engine.finetune_spec import (  # noqa: F401 - re-exported: the CLI's checks
    BASE_DIR_ENV,
    BASES,
    DEFAULT_BATCH,
    DEFAULT_LR,
    DEFAULT_LR_BY_TASK,
    DEFAULT_PALETTE_COLORS,
    DEFAULT_STEPS,
    FRAME_EXTENSIONS,
    HOLD_OUT_RULES,
    MIN_FRAMES,
    TRAIN_EXTRA,
    FrameSet,
    MissingBaseError,
    base_checkpoints_dir,
    base_sidecar,
    check_frames,
    check_model_name,
    default_lr,
    held_out_indices,
    hold_out_count,
    list_frames,
    resolve_base,
    training_missing,
)
from inkhue_engine.frames_io import read_image, write_bytes_atomic
from inkhue_engine.lineart import synthesize_lineart
from inkhue_engine.parent_watch import stop_when_stdin_closes
from inkhue_training.options import AMP_CHOICES

#: Random crops at several scales: frames are scaled so that their short side is
#: crop * U(1, SCALE_MAX) before cropping (crops see from the whole frame to its details).
SCALE_MAX = 2.5
#: Long side of the held-out frames in the check (the model works at its train size).
CHECK_LONG_SIDE = 768
BASE_FORMAT = "inkhue-base-checkpoint"
BASE_FORMAT_VERSION = 1
#: What --progress-jsonl writes, one JSON object per line, each with "event":
PROGRESS_EVENTS = {
    "start": "name, base, task, frames, held_out, total (steps), palette, output",
    "step": "step, total, losses (loss_d, loss_g, l1, adv, img_s; on logged steps only)",
    "phase": "phase: 'export' or 'check' (after the last step)",
    "done": "model (name), file, card, palette, held_out_check, seconds",
    "cancelled": "(SIGTERM, Ctrl-C, or stdin closed with --stop-on-stdin-eof)",
    "error": "error: the one-line message (the exit code is 2)",
}


class Cancelled(BaseException):  # noqa: N818 - not an error: a request to stop
    """Raised in the main thread on SIGTERM: unwinds (removing temp files) and exits 130."""


# ----------------------------------------------------------------------------- base checkpoints
@dataclass
class BaseWeights:
    """A base model to fine-tune: its networks' settings and weights."""

    task: str
    generator_kwargs: dict[str, Any]
    generator: dict[str, Any]
    train_size: int
    name: str
    trained_on: str
    discriminator_kwargs: dict[str, Any] | None = None
    discriminator: dict[str, Any] | None = None
    source: str = ""


def _strip_compiled(state: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("_orig_mod.", ""): v for k, v in state.items()}


def load_base(path: str | os.PathLike) -> BaseWeights:
    """Read a base: a shipped-format checkpoint or a training checkpoint (its EMA
    generator, and its discriminator). InputError when it is neither."""
    from inkhue_training.export import generator_from_checkpoint, load_checkpoint

    path = Path(path)
    ckpt = load_checkpoint(path)
    if ckpt.get("format") == BASE_FORMAT:
        version = int(ckpt.get("format_version", 0))
        if version != BASE_FORMAT_VERSION:
            raise InputError(
                f"{path}: base checkpoint format {version} is not supported (this inkhue reads "
                f"{BASE_FORMAT_VERSION}): pack it again with this version"
            )
        disc = ckpt.get("discriminator")
        return BaseWeights(
            task=str(ckpt["task"]),
            generator_kwargs=dict(ckpt["generator_kwargs"]),
            generator=ckpt["generator"],
            train_size=int(ckpt["train_size"]),
            name=str(ckpt.get("name") or path.stem),
            trained_on=str(ckpt.get("trained_on") or "unknown"),
            discriminator_kwargs=dict(ckpt["discriminator_kwargs"]) if disc is not None else None,
            discriminator=_strip_compiled(disc) if disc is not None else None,
            source=str(path),
        )
    cfg = ckpt.get("config") or {}
    gen = generator_from_checkpoint(ckpt, use_ema=True)
    disc = ckpt.get("discriminator")
    run = path.resolve().parent
    trained_on = cfg.get("trained_on") or ", ".join(Path(p).name for p in cfg.get("data") or [])
    return BaseWeights(
        task=gen.task,
        generator_kwargs=dict(ckpt["generator_kwargs"]),
        generator=gen.state_dict(),
        train_size=int(cfg.get("crop_size", 128)),
        name=run.name,
        trained_on=trained_on or "unknown",
        discriminator_kwargs=dict(ckpt["discriminator_kwargs"]) if disc is not None else None,
        discriminator=_strip_compiled(disc) if disc is not None else None,
        source=f"{path} (step {ckpt.get('step', '?')})",
    )


def save_base(
    path: str | os.PathLike,
    generator: Any,
    *,
    train_size: int,
    name: str,
    trained_on: str,
    discriminator: Any = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """Write a base checkpoint in the shipped format (and its JSON sidecar), atomically.

    ``generator`` (and ``discriminator``) are networks of inkhue_training.networks;
    their weights are stored as float32 CPU tensors.
    """
    import torch

    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: its folder does not exist; create it first")
    kwargs: dict[str, Any] = {"task": generator.task, "channels": tuple(generator.channels),
                              "n_res": generator.n_res}  # fmt: skip
    if generator.global_context:
        kwargs["global_context"] = True
    if generator.class_head is not None:  # with the temperature the bundled model decodes at
        kwargs["color_head"] = generator.color_head
        kwargs["temperature"] = float(generator.temperature)
        if generator.ab_prior_sigma:
            kwargs["ab_prior_sigma"] = float(generator.ab_prior_sigma)
    meta = {
        "format": BASE_FORMAT,
        "format_version": BASE_FORMAT_VERSION,
        "task": generator.task,
        "train_size": int(train_size),
        "name": str(name),
        "trained_on": str(trained_on),
        "source": dict(source or {}),
    }
    state = {k: v.detach().float().cpu().clone() for k, v in generator.state_dict().items()}
    ckpt: dict[str, Any] = {**meta, "generator_kwargs": kwargs, "generator": state}
    if discriminator is not None:
        # its convs: one per width of channels + [channels[-1]], then the 1-channel head
        widths = [m.out_channels for m in discriminator.net if isinstance(m, torch.nn.Conv2d)]
        ckpt["discriminator_kwargs"] = {"task": discriminator.task, "channels": tuple(widths[:-2])}
        ckpt["discriminator"] = {
            k: v.detach().float().cpu().clone() for k, v in discriminator.state_dict().items()
        }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    write_bytes_atomic(path.with_suffix(".json"), (json.dumps(
        {**meta, "generator_kwargs": kwargs, "discriminator": discriminator is not None},
        indent=2) + "\n").encode())  # fmt: skip
    write_bytes_atomic(path, buf.getvalue())
    return path


def pack_base(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    name: str | None = None,
    with_discriminator: bool = False,
    temperature: float | None = None,
    trained_on: str | None = None,
) -> Path:
    """The shipped base checkpoint of a training run (its last.pt, or a given .pt): the
    EMA generator and its settings (plus the discriminator with ``with_discriminator``).
    ``temperature``: a classification head's decoding temperature, as ``inkhue export
    --temperature`` gave the bundled model (the base and the bundled model must agree);
    ``trained_on``: what the bundled model's metadata says (default: from the run)."""
    from inkhue_training.networks import Discriminator, Generator

    ckpt_path = Path(run)
    if ckpt_path.is_dir():
        ckpt_path = ckpt_path / "last.pt"
    out = Path(out)
    if out.exists() and out.resolve() == ckpt_path.resolve():
        raise InputError(f"{out}: would overwrite the checkpoint; choose another -o")
    base = load_base(ckpt_path)  # a shipped checkpoint may be re-packed too
    gen = Generator(**base.generator_kwargs)
    gen.load_state_dict(base.generator)
    if temperature is not None:
        from inkhue_training.export import set_temperature

        set_temperature(gen, temperature, ckpt_path)
    disc = None
    if with_discriminator:
        if base.discriminator is None:
            raise InputError(f"{ckpt_path}: holds no discriminator to pack")
        disc = Discriminator(**base.discriminator_kwargs)
        disc.load_state_dict(base.discriminator)
    step = None
    m = re.search(r"\(step (\d+)\)", base.source)
    if m:
        step = int(m.group(1))
    return save_base(
        out, gen, train_size=base.train_size, name=name or base.name,
        trained_on=trained_on or base.trained_on, discriminator=disc,
        source={"checkpoint": str(ckpt_path.resolve()), "step": step},
    )  # fmt: skip


# ----------------------------------------------------------------------------- fine-tuning
@dataclass
class FinetuneOptions:
    """What ``inkhue finetune`` does (its flags)."""

    data: str
    base: str = "grayscale"
    output: str | None = None  #: ONNX file; default: user models folder / NAME.onnx
    name: str | None = None  #: default: the output's stem, else the data folder's name
    steps: int = DEFAULT_STEPS
    lr: float | None = None  #: default: finetune_spec.default_lr(the base's task)
    crop_size: int | None = None  #: default: the base's training size
    batch_size: int = DEFAULT_BATCH
    palette_colors: int = DEFAULT_PALETTE_COLORS
    palette: bool = True
    hold_out: int | None = None  #: None: by set size (HOLD_OUT_RULES); 0: no check
    freeze: tuple[str, ...] = ()
    device: str = "auto"
    amp: str = "auto"  #: bf16 autocast where the hardware runs it natively (2x on such CPUs)
    seed: int = 0
    work_dir: str | None = None
    overwrite: bool = False
    progress_bar: bool = True


@dataclass
class FinetuneResult:
    name: str
    file: Path
    card: Path
    palette: list[str] | None
    frames: int
    held_out: list[str]
    held_out_check: dict[str, float] | None
    steps: int
    seconds: float


Events = Callable[[dict[str, Any]], None]


def output_paths(name: str | None, output: str | None, data: str) -> tuple[str, Path, Path]:
    """(model name, ONNX path, card path) of a fine-tuning's result."""
    from inkhue_engine.model import user_models_dir

    if output:
        onnx = Path(output).expanduser()
        if onnx.suffix.lower() != ".onnx":
            raise InputError(f"-o {output}: the model file must end in .onnx")
        if not onnx.parent.is_dir():
            raise InputError(f"-o {output}: the folder {onnx.parent} does not exist")
        name = check_model_name(name or onnx.stem)
    else:
        name = check_model_name(name or Path(data).resolve().name or "studio")
        folder = user_models_dir()
        folder.mkdir(parents=True, exist_ok=True)
        onnx = folder / f"{name}.onnx"
    return name, onnx, onnx.with_suffix(".md")


def _hardware(device: Any) -> str:
    import torch

    cores = os.cpu_count() or 0
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {cores} logical cores, torch {torch.__version__} on {device}"
    if str(device).startswith("cuda"):
        text += f" ({torch.cuda.get_device_name(torch.device(device))})"
    return text


def _check_inputs(truth01: np.ndarray, task: str) -> np.ndarray:
    """The model input of a held-out frame: its gray (grayscale) or its line art."""
    from inkhue_engine.color import rgb_to_gray01

    if task == "lineart":
        from inkhue_engine.color import lab_to_rgb

        L = synthesize_lineart(truth01)
        lab = np.zeros((*L.shape, 3), np.float32)
        lab[..., 0] = L
        return np.ascontiguousarray(lab_to_rgb(lab)[..., 0])
    return rgb_to_gray01(truth01)


def held_out_check(
    frames: Sequence[Path], task: str, models: dict[str, Path], palette: list[str] | None
) -> dict[str, float]:
    """Mean CIEDE2000 to the truth of each model (and with the palette lock) on the
    held-out frames, through the engine's pipeline without hints."""
    from inkhue_engine.color import rgb_to_lab, to_float01
    from inkhue_engine.metrics import mean_ciede2000
    from inkhue_engine.model import load_model
    from inkhue_engine.pipeline import ColorizeOptions, colorize_frame
    from inkhue_training.corpus import composite_on_white

    scores: dict[str, list[float]] = {}
    for path in frames:
        img = read_image(path)
        h, w = img.shape[:2]
        s = CHECK_LONG_SIDE / max(h, w)
        if s < 1:
            img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        truth = composite_on_white(img).astype(np.float32) / 255.0
        truth_lab = rgb_to_lab(truth)
        inp = _check_inputs(truth, task)
        for label, file in models.items():
            model = load_model(file, "cpu")
            runs = [(label, ColorizeOptions())]
            if palette:
                runs.append((f"{label}+palette", ColorizeOptions(palette=tuple(palette))))
            for key, opts in runs:
                out = to_float01(colorize_frame(inp, model, None, opts))
                scores.setdefault(key, []).append(mean_ciede2000(rgb_to_lab(out), truth_lab))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def finetune(opts: FinetuneOptions, events: Events | None = None) -> FinetuneResult:
    """Fine-tune a base model on a folder of colored frames; write the ONNX model and
    its card (see the module docstring). ``events(dict)`` gets PROGRESS_EVENTS.

    Everything is checked before training starts; temp files live in a temp folder
    (under ``opts.work_dir``) that is removed however this ends.
    """
    emit = events or (lambda _e: None)
    started = time.monotonic()
    if opts.steps < 1:
        raise InputError(f"--steps {opts.steps}: use 1 or more")
    if opts.batch_size < 1:
        raise InputError(f"--batch-size {opts.batch_size}: use 1 or more")
    if opts.lr is not None and not opts.lr > 0:
        raise InputError(f"--lr {opts.lr}: use a positive learning rate")
    if opts.palette_colors < 1:
        raise InputError(f"--palette-colors {opts.palette_colors}: use 1 or more")
    name, onnx_path, card_path = output_paths(opts.name, opts.output, opts.data)
    if not opts.overwrite:
        for p in (onnx_path, card_path):
            if p.exists():
                raise InputError(f"{p} exists: choose another --name / -o, or pass --overwrite")
    missing = training_missing()
    if missing:
        raise InkHueError(missing)
    base_path = resolve_base(opts.base)
    base = load_base(base_path)
    if opts.lr is None:  # the card and the config read opts.lr
        opts = dataclasses.replace(opts, lr=default_lr(base.task))
    crop = int(opts.crop_size or base.train_size)
    m = int(2 ** len(base.generator_kwargs.get("channels", (32, 64, 128))))
    if crop < 16 or crop % m:
        raise InputError(f"--crop-size {crop}: use a multiple of {m} of at least 16")
    for part in opts.freeze:
        if part not in ("encoder", "res", "decoder"):
            raise InputError(f"--freeze {part}: use encoder, res or decoder")

    from inkhue_engine.palette import palette_colors

    thumbs: dict[Path, np.ndarray] = {}

    def keep_thumb(path: Path, img: np.ndarray) -> None:
        h, w = img.shape[:2]
        s = 512 / min(h, w)
        thumbs[path] = img if s >= 1 else cv2.resize(
            img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)  # fmt: skip

    frames = check_frames(opts.data, crop, on_image=keep_thumb)
    k = hold_out_count(len(frames.files)) if opts.hold_out is None else max(0, opts.hold_out)
    if len(frames.files) - k < MIN_FRAMES:
        raise InputError(
            f"--hold-out {k}: leaves {len(frames.files) - k} frames to train on "
            f"(at least {MIN_FRAMES})"
        )
    held_idx = held_out_indices(len(frames.files), k)
    held = [frames.files[i] for i in held_idx]
    train_files = [f for i, f in enumerate(frames.files) if i not in set(held_idx)]

    colors = palette_colors([thumbs[f] for f in train_files], max_colors=opts.palette_colors)
    thumbs.clear()
    palette = [c.hex for c in colors] if opts.palette else None
    if palette is not None and not any(c.role == "fill" for c in colors):
        palette = None  # only paper and ink: nothing to lock to
    trained_on = (
        f"fine-tuned from {base.name} ({base.trained_on}) on {len(train_files)} frames of "
        f"{Path(opts.data).resolve().name}"
    )
    emit({"event": "start", "name": name, "base": base.name, "task": base.task,
          "frames": len(train_files), "held_out": [frames.rel(p) for p in held],
          "total": opts.steps, "palette": palette, "output": str(onnx_path)})  # fmt: skip
    for g in frames.gray:
        print(f"note: frame {g} has no color; it teaches gray", file=sys.stderr)

    import torch

    from inkhue_training.export import export_generator, generator_from_checkpoint
    from inkhue_training.export import load_checkpoint as load_ckpt
    from inkhue_training.networks import Generator
    from inkhue_training.options import TrainConfig
    from inkhue_training.train import WarmStart, train

    d_channels = list((base.discriminator_kwargs or {}).get("channels") or TrainConfig().d_channels)
    config = TrainConfig(
        data=[str(f) for f in train_files],
        val=[str(f) for f in held],
        task=base.task,
        trained_on=trained_on,
        val_fraction=0.0,
        crop_size=crop,
        scale_max=SCALE_MAX,
        repeat=max(1, math.ceil(4 * opts.batch_size / len(train_files))),
        channels=list(base.generator_kwargs["channels"]),
        n_res=int(base.generator_kwargs["n_res"]),
        global_context=bool(base.generator_kwargs.get("global_context", False)),
        color_head=str(base.generator_kwargs.get("color_head", "regression")),
        temperature=float(base.generator_kwargs.get("temperature", TrainConfig.temperature)),
        ab_prior_sigma=float(base.generator_kwargs.get("ab_prior_sigma", 0.0)),
        d_channels=d_channels,
        batch_size=opts.batch_size,
        lr=opts.lr,
        seed=opts.seed,
        device=opts.device,
        amp=opts.amp,
        max_steps=opts.steps,
        save_every=0,
        keep=1,
        val_every=opts.steps if held else 0,
        grid_images=0,
        progress=opts.progress_bar,
    )
    warm = WarmStart(
        generator=base.generator, discriminator=base.discriminator, freeze=tuple(opts.freeze)
    )

    def on_step(step: int, losses: dict[str, float] | None) -> None:
        event: dict[str, Any] = {"event": "step", "step": step, "total": opts.steps}
        if losses is not None:
            event["losses"] = {k: round(float(v), 5) for k, v in losses.items()}
        emit(event)

    with tempfile.TemporaryDirectory(prefix="inkhue-finetune-", dir=opts.work_dir) as tmp:
        work = Path(tmp)
        run = work / "run"
        config.out = str(run)
        code = train(config, warm_start=warm, on_step=on_step)
        if code == 130:
            raise KeyboardInterrupt
        emit({"event": "phase", "phase": "export"})
        gen = generator_from_checkpoint(load_ckpt(run / "last.pt"), use_ema=True)
        tuned_onnx = work / f"{name}.onnx"
        export_generator(gen, tuned_onnx, name=name, trained_on=trained_on, train_size=crop,
                         palette=palette)  # fmt: skip
        check = None
        if held:
            emit({"event": "phase", "phase": "check"})
            base_gen = Generator(**base.generator_kwargs)
            base_gen.load_state_dict(base.generator)
            base_onnx = work / "base.onnx"
            export_generator(base_gen.eval(), base_onnx, name=base.name,
                             trained_on=base.trained_on, train_size=base.train_size,
                             check=False)  # fmt: skip
            check = held_out_check(held, base.task, {"base": base_onnx, "finetuned": tuned_onnx},
                                   palette)  # fmt: skip
        seconds = time.monotonic() - started
        device = opts.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        result = FinetuneResult(
            name=name, file=onnx_path, card=card_path, palette=palette,
            frames=len(train_files), held_out=[frames.rel(p) for p in held],
            held_out_check=check, steps=opts.steps, seconds=seconds,
        )  # fmt: skip
        card = model_card(result, opts, base, frames, colors, crop, _hardware(device))
        # the model before its card (a card alone would hold the name for no model), and
        # without --overwrite never over a model that appeared while this one trained
        write_bytes_atomic(onnx_path, tuned_onnx.read_bytes(), exclusive=not opts.overwrite)
        write_bytes_atomic(card_path, card.encode("utf-8"))
    emit(
        {
            "event": "done",
            "model": name,
            "file": str(onnx_path),
            "card": str(card_path),
            "palette": palette,
            "held_out_check": check,
            "seconds": round(seconds, 1),
        }
    )
    return result


def model_card(
    result: FinetuneResult,
    opts: FinetuneOptions,
    base: BaseWeights,
    frames: FrameSet,
    colors: list[Any],
    crop: int,
    hardware: str,
) -> str:
    """The Markdown model card written next to a fine-tuned model."""
    lines = [
        f"# {result.name}",
        "",
        f"An InkHue {base.task} model fine-tuned by `inkhue finetune` on a studio's own frames.",
        "",
        "| | |",
        "|---|---|",
        f"| base model | {base.name} ({base.source}); trained on: {base.trained_on} |",
        f"| data | `{Path(opts.data).resolve()}`: {len(frames.files)} frames "
        f"({result.frames} trained on, {len(result.held_out)} held out) |",
        f"| training | {result.steps} steps, batch {opts.batch_size}, {crop}-px crops at "
        f"scales 1-{SCALE_MAX}x, horizontal flips, lr {opts.lr:g}, EMA of the weights"
        + (f", frozen: {', '.join(opts.freeze)}" if opts.freeze else "")
        + " |",
        f"| wall time | {result.seconds / 60:.1f} min (checks, training, export, held-out check) |",
        f"| hardware | {hardware} |",
        f"| file | `{result.file.name}`; working size {crop} px on the short side |",
        "",
        "## Palette",
        "",
    ]
    if not colors:
        lines.append("No flat colors were found in the frames.")
    else:
        stored = (
            "stored in the model (`inkhue.palette`), so the palette lock uses it unless "
            "`--palette none`; the paper and ink colors found are in it too, so that "
            "backgrounds and lines keep their colors"
            if result.palette
            else "not stored in the model (`--no-palette`)"
        )
        lines += [
            f"Flat colors of the training frames, by coverage; {stored}.",
            "",
            "| color | coverage | role |",
            "|---|---|---|",
        ]
        lines += [f"| `{c.hex}` | {100 * c.coverage:.1f}% | {c.role} |" for c in colors]
    lines += ["", "## Held-out check", ""]
    if result.held_out_check:
        lines += [
            f"Frames not trained on: {', '.join(result.held_out)}. Mean CIEDE2000 to the "
            "true colors, colorized without hints by the engine (lower is better):",
            "",
            "| model | mean CIEDE2000 |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.2f} |" for k, v in result.held_out_check.items()]
        lines.append("")
        lines.append(
            "Held-out frames of a sequence may be close to frames trained on; "
            "this is a sanity check, not a benchmark."
        )
    else:
        lines.append(
            f"None: the set has {len(frames.files)} frames (a check holds out "
            f"frames from sets of {HOLD_OUT_RULES[-1][0]} or more)."
        )
    if frames.gray:
        lines += ["", f"Frames without color (trained on as they are): {', '.join(frames.gray)}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` subcommand."""
    p = subparsers.add_parser(
        "finetune",
        help="retrain a base model on a studio's own colored frames (its palette)",
        description="Fine-tune the shipped grayscale or line-art model (or a checkpoint) on "
        "a folder of colored frames of one production. Writes NAME.onnx (with the studio "
        "palette read from the frames) and a model card NAME.md into the user models folder, "
        "where inkhue, its server and the Krita docker find it.",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="FOLDER",
        help="folder of colored frames (PNG, TIFF, JPEG, WebP; searched recursively)",
    )
    p.add_argument(
        "--base",
        default="grayscale",
        metavar="grayscale|lineart|PATH",
        help="shipped base model, a .pt checkpoint or a training run folder (default: grayscale)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE.onnx",
        help="model file to write (default: the user models folder / NAME.onnx)",
    )
    p.add_argument(
        "--name", help="model name (default: the -o file's stem, else the data folder's name)"
    )
    p.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})"
    )
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: "
        + ", ".join(f"{v:g} from a {k} base" for k, v in DEFAULT_LR_BY_TASK.items())
        + ")",
    )
    p.add_argument(
        "--crop-size",
        type=int,
        metavar="PX",
        help="training crop (default: the base model's training size)",
    )
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"default {DEFAULT_BATCH}")
    p.add_argument(
        "--palette-colors",
        type=int,
        default=DEFAULT_PALETTE_COLORS,
        metavar="K",
        help=f"fill colors kept in the studio palette (default {DEFAULT_PALETTE_COLORS})",
    )
    p.add_argument(
        "--no-palette",
        action="store_true",
        help="do not store a palette in the model (no palette lock by default)",
    )
    p.add_argument(
        "--hold-out",
        type=int,
        metavar="N",
        help="frames held out for the model card's check (default: 1 from 10 frames, "
        "2 from 24; 0: no check)",
    )
    p.add_argument(
        "--freeze",
        nargs="+",
        default=[],
        choices=["encoder", "res", "decoder"],
        help="generator parts kept fixed (fewer weights to fit a small set)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        default="auto",
        help="bf16 mixed precision: auto (default) uses it where the CPU/GPU runs bf16 "
        "natively (about 2x faster on CPUs with AVX-512 BF16)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing model of the same name"
    )
    p.add_argument(
        "--work-dir",
        metavar="DIR",
        help="where the temp folder goes (default: the system's temp folder)",
    )
    p.add_argument(
        "--progress-jsonl",
        metavar="FILE|-",
        help="write progress as JSON lines to FILE ('-': stdout; human messages "
        "always go to stderr)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--stop-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


class _JsonLines:
    """Progress events as JSON lines on stdout or in a file, flushed per line."""

    def __init__(self, target: str | None) -> None:
        self.fh = None
        self.own = False
        if target == "-":
            self.fh = sys.stdout
        elif target:
            self.fh = open(target, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self.own = True

    def __call__(self, event: dict[str, Any]) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps(event) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.own and self.fh is not None:
            self.fh.close()


def _raise_cancelled(signum: int, frame: Any) -> None:
    raise Cancelled(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    """``inkhue finetune``: returns 0; 130 when cancelled; InkHueError for bad input."""
    opts = FinetuneOptions(
        data=args.data, base=args.base, output=args.output, name=args.name, steps=args.steps,
        lr=args.lr, crop_size=args.crop_size, batch_size=args.batch_size,
        palette_colors=args.palette_colors, palette=not args.no_palette,
        hold_out=args.hold_out, freeze=tuple(args.freeze), device=args.device, amp=args.amp,
        seed=args.seed,
        work_dir=args.work_dir, overwrite=args.overwrite, progress_bar=not args.quiet,
    )  # fmt: skip
    sink = _JsonLines(args.progress_jsonl)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_cancelled)
    if args.stop_on_stdin_eof:
        stop_when_stdin_closes()
    try:
        result = finetune(opts, sink)
    except (Cancelled, KeyboardInterrupt):
        sink({"event": "cancelled"})
        print("inkhue finetune: cancelled; nothing was written", file=sys.stderr)
        return 130
    except InkHueError as exc:
        sink({"event": "error", "error": str(exc)})
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        sink.close()
    msg = f"wrote {result.file} and its card {result.card.name} in {result.seconds / 60:.1f} min"
    if result.palette:
        msg += f"; palette {' '.join(result.palette)}"
    if result.held_out_check:
        msg += "; held-out mean CIEDE2000 " + ", ".join(
            f"{k} {v:.2f}" for k, v in result.held_out_check.items())  # fmt: skip
    print(msg, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m inkhue_training.finetune pack-base RUN_DIR|CKPT -o FILE.pt``."""
    parser = argparse.ArgumentParser(
        prog="python -m inkhue_training.finetune",
        description="Tools for the base checkpoints that 'inkhue finetune' starts from.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "pack-base",
        help="write a shipped base checkpoint from a training run",
        description="Keep the EMA generator (and its settings) of a training "
        "run's checkpoint: a small file for training/checkpoints/.",
    )
    p.add_argument("run", help="training run folder (its last.pt) or a checkpoint .pt")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="file to write, e.g. "
        "training/checkpoints/grayscale.pt (a .json sidecar is written beside it)",
    )
    p.add_argument("--name", help="base model name (default: the run folder's name)")
    p.add_argument(
        "--with-discriminator",
        action="store_true",
        help="keep the run's discriminator too (fine-tuning then starts from it)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        help="a classification head's decoding temperature (as given to inkhue export)",
    )
    p.add_argument("--trained-on", help="what it was trained on (default: from the run)")
    args = parser.parse_args(argv)
    try:
        out = pack_base(
            args.run,
            args.output,
            name=args.name,
            with_discriminator=args.with_discriminator,
            temperature=args.temperature,
            trained_on=args.trained_on,
        )
    except InkHueError as exc:
        print(f"pack-base: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.with_suffix('.json')}")
    return 0


__all__ = [
    "BASES",
    "BaseWeights",
    "Cancelled",
    "FinetuneOptions",
    "FinetuneResult",
    "FrameSet",
    "MissingBaseError",
    "base_checkpoints_dir",
    "check_frames",
    "check_model_name",
    "finetune",
    "load_base",
    "pack_base",
    "register",
    "resolve_base",
    "save_base",
    "training_missing",
]

if __name__ == "__main__":
    sys.exit(main())
