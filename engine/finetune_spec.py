"""What a fine-tuning needs, checked without torch: the frame-set checks, the defaults,
model names, and where the shipped base checkpoints live.

The server (engine) checks a /train request with these before it starts ``inkhue
finetune`` (training/finetune.py) in a subprocess, and the CLI runs the same checks,
so both refuse a broken or too-small set with the same one-line message before
anything trains. Training imports this module; the engine never imports training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inkhue_engine.color import on_white, rgb_to_lab
from inkhue_engine.errors import InkHueError, InputError
from inkhue_engine.frames_io import natural_key, read_image

#: Fewest frames a fine-tuning accepts (a few dozen work best).
MIN_FRAMES = 4
#: Held-out frames of the check in the model card, by set size: (at least n frames, k held out).
HOLD_OUT_RULES = ((24, 2), (10, 1))
DEFAULT_STEPS = 300
DEFAULT_LR = 1e-4
#: Learning rate by the base's task where measured (docs/TRAINING.md, "Fine-tuning's learning
#: rate"): from the grayscale base 2.0, 1e-4 left a shot's colors half learned in 300 steps.
DEFAULT_LR_BY_TASK = {"grayscale": 1e-3, "lineart": DEFAULT_LR}
DEFAULT_BATCH = 8
DEFAULT_PALETTE_COLORS = 16
#: A frame is colored when at least this share of its non-white pixels has chroma > 10.
COLORED_SHARE = 0.01
#: Image files read as frames (the same list as inkhue_training.data.IMAGE_EXTENSIONS).
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
BASES = ("grayscale", "lineart")
#: Folder of the shipped base checkpoints, when not training/checkpoints.
BASE_DIR_ENV = "INKHUE_BASE_CHECKPOINTS"
#: Packages that fine-tuning needs beyond the engine's (the 'train' extra).
TRAIN_PACKAGES = ("torch", "onnx", "onnxscript")
TRAIN_EXTRA = "pip install 'inkhue[train]'"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")


class MissingBaseError(InkHueError):
    """A named base checkpoint is not installed (the server answers 501)."""

    http_status = 501


def default_lr(task: str) -> float:
    """The fine-tuning learning rate for a base of ``task`` when none is given."""
    return DEFAULT_LR_BY_TASK.get(task, DEFAULT_LR)


# ----------------------------------------------------------------------------- checks
def training_missing() -> str | None:
    """None when fine-tuning can run here, else a one-line message saying what to install."""
    missing = [
        p for p in (*TRAIN_PACKAGES, "inkhue_training") if importlib.util.find_spec(p) is None
    ]
    if not missing:
        return None
    return f"fine-tuning needs the training extra (missing: {', '.join(missing)}): {TRAIN_EXTRA}"


def check_model_name(name: str) -> str:
    """A model name that is also a safe file name; InputError otherwise."""
    name = str(name).strip()
    if name.lower().endswith(".onnx"):
        name = name[:-5]
    if not _NAME_RE.match(name):
        raise InputError(
            f"model name {name!r}: use 1-64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass
class FrameSet:
    """The checked frames of a fine-tuning set."""

    folder: Path
    files: list[Path]
    sizes: list[tuple[int, int]]  #: (height, width) per file
    #: frames without color (kept, but they teach gray): relative names
    gray: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.folder).as_posix()
        except ValueError:
            return path.name


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively; hidden files skipped), naturally sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder of colored frames")
    files = [
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]  # fmt: skip
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


#: Pixels whose channels are all at least this (of 1.0) are paper, not drawing.
WHITE_LEVEL = 240 / 255


def _is_colored(img: np.ndarray) -> bool:
    small = cv2.resize(on_white(img), (128, 128), interpolation=cv2.INTER_AREA)
    mask = small.min(axis=2) < WHITE_LEVEL
    if not mask.any():
        return False
    lab = rgb_to_lab(small)
    chroma = np.hypot(lab[..., 1], lab[..., 2])[mask]
    return float(np.mean(chroma > 10.0)) >= COLORED_SHARE


def check_frames(
    data: str | os.PathLike,
    crop_size: int,
    min_frames: int = MIN_FRAMES,
    on_image: Callable[[Path, np.ndarray], None] | None = None,
    label: str | None = None,
) -> FrameSet:
    """Check a folder of colored frames for fine-tuning, before anything is trained.

    Refuses (InputError, one line) a missing folder, a folder without image files,
    fewer than ``min_frames`` frames, any unreadable frame, a frame whose short side
    is under ``crop_size``, and a set in which no frame has color. ``on_image(path,
    image)`` sees every decoded frame (e.g. to keep a thumbnail). ``label`` names the
    set in messages instead of the folder's path (e.g. 'uploaded frames'). No torch needed.
    """
    folder = Path(data)
    files = list_frames(folder)
    where = label or str(folder)
    exts = ", ".join(e.lstrip(".").upper() for e in FRAME_EXTENSIONS[:4])
    if not files:
        raise InputError(f"{where}: no frames ({exts} or WebP files)")
    if len(files) < min_frames:
        raise InputError(
            f"{where}: {len(files)} frame(s); fine-tuning needs at least {min_frames} colored "
            f"frames of the production (a few dozen work best)"
        )
    fs = FrameSet(folder=folder, files=files, sizes=[])
    for path in files:
        try:
            img = read_image(path)
        except InputError as exc:
            reason = str(exc)
            if reason.startswith(f"{path}: "):
                reason = reason[len(f"{path}: ") :]
            raise InputError(
                f"{where}: frame {fs.rel(path)}: {reason} (or remove it from the set)"
            ) from None
        h, w = img.shape[:2]
        if min(h, w) < crop_size:
            raise InputError(
                f"{where}: frame {fs.rel(path)} is {w}x{h} px, smaller than the {crop_size}-px "
                f"training crop: use frames of at least {crop_size} px on the short side, or a "
                f"smaller crop size"
            )
        fs.sizes.append((h, w))
        if not _is_colored(img):
            fs.gray.append(fs.rel(path))
        if on_image is not None:
            on_image(path, img)
    if len(fs.gray) == len(files):
        raise InputError(
            f"{where}: none of the {len(files)} frames has color: fine-tuning learns a "
            "production's colors from its colored frames"
        )
    return fs


def base_checkpoints_dir() -> Path:
    """Where ``--base grayscale|lineart`` is looked up: $INKHUE_BASE_CHECKPOINTS, else
    the checkpoints/ folder of the installed inkhue_training."""
    env = os.environ.get(BASE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    # found without importing inkhue_training (which may be absent: then nothing is there)
    spec = importlib.util.find_spec("inkhue_training")
    if spec is None or not spec.submodule_search_locations:
        return Path(BASE_DIR_ENV + "-not-set")
    return Path(list(spec.submodule_search_locations)[0]) / "checkpoints"


def resolve_base(base: str) -> Path:
    """The checkpoint file of ``--base``: a shipped base by name, a .pt file, or a run
    folder (its last.pt). MissingBaseError when a named base is not installed,
    InputError for a path that is not a checkpoint. No torch needed."""
    text = str(base).strip()
    if text in BASES:
        path = base_checkpoints_dir() / f"{text}.pt"
        if not path.is_file():
            raise MissingBaseError(
                f"base {text!r}: the shipped checkpoint {path} is not installed: pass a "
                f"checkpoint file with --base PATH (a training run's last.pt, or one made by "
                f"'python -m inkhue_training.finetune pack-base RUN_DIR -o FILE')"
            )
        return path
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / "last.pt"
        if not path.is_file():
            raise InputError(f"--base {text}: the folder has no last.pt (not a training run)")
    if path.suffix.lower() == ".onnx":
        raise InputError(
            f"--base {text}: an ONNX model cannot be fine-tuned: give the .pt checkpoint it "
            f"was exported from, or --base {' / '.join(BASES)}"
        )
    if not path.is_file():
        raise InputError(
            f"--base {text}: no such checkpoint: use {' or '.join(BASES)}, a .pt checkpoint "
            f"or a training run folder"
        )
    return path


def base_sidecar(path: Path) -> dict[str, Any] | None:
    """The JSON sidecar of a shipped base checkpoint (task, train_size, name...), if any."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def hold_out_count(n_frames: int) -> int:
    """Frames held out of training for the model card's check (HOLD_OUT_RULES)."""
    for at_least, k in HOLD_OUT_RULES:
        if n_frames >= at_least:
            return k
    return 0


def held_out_indices(n_frames: int, k: int) -> list[int]:
    """``k`` frames spread over the set (not its ends), so a sequence is sampled evenly."""
    if k <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, n_frames - 1, k + 2)[1:-1]})
