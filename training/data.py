"""Training data: folders of colored images -> (model input, Lab target) pairs.

Each item is a random crop of one image (big images are first scaled down so that a
crop sees whole objects, not a patch of texture), flipped at random, converted to
Lab with the engine's color module. The input's L is the true L (grayscale task)
or line art synthesized from the color crop (line-art task). Hints are sampled from
the ground truth with the engine's ``sample_hints`` and spread over the regions of
the input L with ``regions_of`` + ``spread_hints``: exactly what the engine does
with a user's hints at inference. Every item's randomness comes from
(seed, epoch, index), so items are reproducible whatever the worker layout.
Unreadable files are skipped with one warning naming them.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from inkhue_engine.color import rgb_to_lab, to_float01
from inkhue_engine.errors import InputError
from inkhue_engine.hints import sample_hints
from inkhue_engine.lineart import synthesize_lineart
from inkhue_engine.regions import regions_of, spread_hints
from inkhue_training.networks import TASKS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def list_images(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """All image files (by extension) under ``folders``, recursively, sorted."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise InputError(f"{folder}: no such image folder")
        files.extend(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
    return sorted(set(files))


def read_rgb(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image file as (RGB float01 HxWx3, alpha float01 HxW or None).

    16-bit and float files keep their precision (``to_float01`` by dtype). Raises
    ValueError when the file cannot be decoded or has an unsupported pixel type.
    """
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ValueError("not a readable image")
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    img = to_float01(img)
    if img.ndim == 2:
        img = img[..., None]
    channels = img.shape[2]
    alpha = None
    if channels == 1:
        rgb = np.repeat(img, 3, axis=2)
    elif channels == 2:  # gray + alpha
        rgb, alpha = np.repeat(img[..., :1], 3, axis=2), img[..., 1]
    elif channels == 3:
        rgb = img[..., ::-1]
    elif channels == 4:
        rgb, alpha = img[..., 2::-1], img[..., 3]
    else:
        raise ValueError(f"unsupported channel count {channels}")
    return np.ascontiguousarray(rgb), alpha


def composite(rgb: np.ndarray, alpha: np.ndarray | None, background: Sequence[float]) -> np.ndarray:
    """Alpha-composite ``rgb`` (float01) over a flat ``background`` color (float01 RGB)."""
    if alpha is None:
        return rgb
    bg = np.asarray(background, np.float32).reshape(1, 1, 3)
    a = alpha[..., None]
    return (rgb * a + bg * (1.0 - a)).astype(np.float32)


@dataclass(frozen=True)
class DataConfig:
    """How items are made (the training options relevant to data)."""

    task: str = "grayscale"
    crop_size: int = 128
    #: big images are scaled so their short side is crop_size * U(1, scale_max)
    scale_max: float = 2.0
    hflip: bool = True
    vflip: bool = False
    #: probability of an item with no hints at all
    p_no_hints: float = 0.3
    #: otherwise 1..max_hints hint points
    max_hints: int = 30
    #: how the count is drawn: "uniform" over 1..max_hints, or "geometric" with
    #: hint_geometric_p (mean 1/p), capped at max_hints (Zhang et al., SIGGRAPH 2017: few
    #: hints are the common case, many hints the rare one)
    hint_count: str = "uniform"
    hint_geometric_p: float = 0.125
    hint_patch: int = 3
    #: probability that a transparent image is put on a random flat color (else white)
    p_color_background: float = 0.3
    #: fixed hint count (validation); None = random as above
    fixed_hints: int | None = None
    #: random crops and flips (training) or a deterministic centre crop (validation)
    augment: bool = True


class ColorImageDataset(Dataset):
    """(input [4,H,W] float32, target [2 or 3,H,W] float32) from folders of color images.

    ``repeat`` makes an epoch visit every image that many times (a few big images
    give many different crops). Call ``set_epoch`` to vary the crops between epochs.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        config: DataConfig,
        seed: int = 0,
        repeat: int = 1,
    ) -> None:
        if config.task not in TASKS:
            raise ValueError(f"unknown task {config.task!r}: use 'grayscale' or 'lineart'")
        if not files:
            raise InputError("no training images found (PNG, JPEG, TIFF or WebP)")
        self.files = [Path(f) for f in files]
        self.config = config
        self.seed = int(seed)
        self.repeat = max(1, int(repeat))
        # shared memory, so DataLoader workers (also persistent ones) see the epoch set in
        # the main process and each other's unreadable files: each is warned about once
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._bad = torch.zeros(len(self.files), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Draw different crops, flips and hints in each epoch."""
        self._epoch[0] = int(epoch)

    @property
    def unreadable(self) -> list[Path]:
        """Files found unreadable so far (skipped)."""
        return [f for f, bad in zip(self.files, self._bad.tolist(), strict=True) if bad]

    def _rng(self, index: int, stream: int = 0) -> np.random.Generator:
        epoch = self.epoch if self.config.augment else 0
        return np.random.default_rng([self.seed, epoch, index, stream])

    def _candidates(self, index: int) -> Iterator[int]:
        n = len(self.files)
        yield index % n
        yield from self._rng(index, stream=1).permutation(n).tolist()

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Read the item's image, or a substitute when it is unreadable."""
        for i in self._candidates(index):
            if self._bad[i]:
                continue
            try:
                return read_rgb(self.files[i])
            except (ValueError, cv2.error) as exc:
                self._bad[i] = True
                msg = f"skipping unreadable training image {self.files[i]}: {exc}"
                if torch.utils.data.get_worker_info() is None:
                    warnings.warn(msg, stacklevel=3)
                else:
                    # a forked worker inherits the parent's warning filters and recorders
                    # (pytest's, a notebook's) and its warnings can vanish: write directly
                    print(f"warning: {msg}", file=sys.stderr, flush=True)
        raise InputError(f"none of the {len(self.files)} training images could be read")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, alpha = self._read(index)
        inp, target = make_item(rgb, alpha, self.config, self._rng(index))
        return torch.from_numpy(inp), torch.from_numpy(target)


def _resize_for_crop(rgb: np.ndarray, crop: int, scale_max: float, rng, augment: bool):
    h, w = rgb.shape[:2]
    short = min(h, w)
    target = crop * (rng.uniform(1.0, max(1.0, scale_max)) if augment else 1.0)
    if short > target or short < crop:
        s = target / short
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        size = (max(crop, round(w * s)), max(crop, round(h * s)))
        rgb = cv2.resize(rgb, size, interpolation=interp)
    return rgb


def make_item(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    config: DataConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One (input [4,c,c], target [2|3,c,c]) pair from an RGB float01 image (+ alpha)."""
    c = config.crop_size
    if alpha is not None:
        if config.augment and rng.random() < config.p_color_background:
            bg = rng.uniform(0, 1, 3)
        else:
            bg = (1.0, 1.0, 1.0)
        rgb = composite(rgb, alpha, bg)
    rgb = _resize_for_crop(rgb, c, config.scale_max, rng, config.augment)
    h, w = rgb.shape[:2]
    if config.augment:
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
    else:
        y, x = (h - c) // 2, (w - c) // 2
    rgb = rgb[y : y + c, x : x + c]
    if config.augment and config.hflip and rng.random() < 0.5:
        rgb = rgb[:, ::-1]
    if config.augment and config.vflip and rng.random() < 0.5:
        rgb = rgb[::-1]
    rgb = np.ascontiguousarray(rgb, np.float32)
    lab = rgb_to_lab(rgb)
    if config.task == "lineart":
        L_in = synthesize_lineart(rgb, rng if config.augment else None)
        target = lab
    else:
        L_in = lab[..., 0]
        target = lab[..., 1:]

    if config.fixed_hints is not None:
        n_hints = int(config.fixed_hints)
    elif rng.random() < config.p_no_hints:
        n_hints = 0
    else:
        n_hints = draw_hint_count(config, rng)
    hint_ab = np.zeros((c, c, 2), np.float32)
    hint_mask = np.zeros((c, c), np.float32)
    if n_hints > 0:
        labels = regions_of(L_in, config.task)
        ab, mask = sample_hints(lab, n_hints, rng, patch=config.hint_patch, valid=labels > 0)
        hint_ab, hint_mask = spread_hints(labels, ab, mask)

    inp = np.empty((4, c, c), np.float32)
    inp[0] = L_in
    inp[1:3] = hint_ab.transpose(2, 0, 1)
    inp[3] = hint_mask
    return inp, np.ascontiguousarray(target.transpose(2, 0, 1), np.float32)


def draw_hint_count(config: DataConfig, rng: np.random.Generator) -> int:
    """Hints of an item that has hints: 1..max_hints, uniform or geometric (see DataConfig)."""
    top = max(1, config.max_hints)
    if config.hint_count == "geometric":
        return int(min(top, rng.geometric(config.hint_geometric_p)))
    if config.hint_count != "uniform":
        raise ValueError(f"unknown hint count {config.hint_count!r}: use uniform or geometric")
    return int(rng.integers(1, top + 1))


def worker_init(_worker_id: int) -> None:
    """DataLoader worker setup: one OpenCV thread per worker (workers are the parallelism).

    Item randomness is seeded per item, not per worker, so nothing else is needed.
    """
    cv2.setNumThreads(1)
