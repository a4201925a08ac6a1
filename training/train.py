"""The training loop: L1 x100 + adversarial loss, EMA generator, checkpoints, validation.

One process on the CPU or one GPU by default; under ``torchrun`` (WORLD_SIZE > 1)
DistributedDataParallel with gloo on CPU or NCCL on CUDA, a DistributedSampler, and
only rank 0 logging, validating and saving. The EMA of the generator's weights (and
BatchNorm buffers) is what validation measures and what gets exported.

    python -m inkhue_training.train --data DIR --task grayscale --out runs/x
    torchrun --standalone --nproc_per_node 2 -m inkhue_training.train --data DIR ...
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from inkhue_engine import metrics
from inkhue_engine.color import lab_to_rgb, rgb_to_lab
from inkhue_engine.errors import InkHueError, InputError
from inkhue_engine.frames_io import write_bytes_atomic
from inkhue_engine.metrics import mean_ciede2000
from inkhue_engine.regions import flat_fill, regions_of
from inkhue_training.color_classes import (
    AbQuantizer,
    class_histogram,
    rebalance_weights,
    rebalanced_cross_entropy,
)
from inkhue_training.data import (
    ColorImageDataset,
    DataConfig,
    composite,
    list_images,
    make_item,
    read_rgb,
    worker_init,
)
from inkhue_training.losses import GANLoss, chroma_match, color_l1, unhinted_pixel_weights
from inkhue_training.networks import Discriminator, Generator
from inkhue_training.options import (
    AMP_CHOICES,
    COLOR_HEADS,
    HINT_COUNTS,
    LR_DECAYS,
    SELECT_METRICS,
    TrainConfig,
    add_train_arguments,
    config_from_args,
)
from inkhue_training.warm_start import load_init

CKPT_FORMAT = 1
LAST = "last.pt"
#: The hold-out of --data a run validates on (without --val), kept for its resumes.
VAL_LIST = "val_files.txt"
#: The checkpoint with the best validation score (--select-metric): the one to ship.
BEST = "best.pt"
LOG = "log.jsonl"


# ----------------------------------------------------------------------------- setup
@dataclass
class Dist:
    """Where this process stands in a (possibly single-process) run."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device: str) -> Dist:
    """Read torchrun's environment; start the process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
        if world > 1 and dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world > 1:
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(world=world, rank=rank, local_rank=local_rank, device=dev)


def ema_warmup_avg_fn(decay: float):
    """EMA multi-average fn whose decay warms up as min(decay, (1+n)/(10+n)).

    With a fixed 0.999 the EMA of a short run would still be mostly the random init.
    """

    @torch.no_grad()
    def update(ema_params, params, num_averaged) -> None:
        n = float(num_averaged)
        get_ema_multi_avg_fn(min(decay, (1.0 + n) / (10.0 + n)))(ema_params, params, n)

    return update


class SkipSampler(Sampler):
    """A sampler that drops its first ``skip`` indices (resuming inside an epoch)."""

    def __init__(self, base: DistributedSampler) -> None:
        self.base = base
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __iter__(self):
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


def split_files(
    config: TrainConfig, kept: list[str] | None = None
) -> tuple[list[Path], list[Path], list[Path]]:
    """(training files, validation files, the hold-out of --data): --val folders, or a
    seeded hold-out of --data; ``kept``: the hold-out a resumed run started with (its
    VAL_LIST), so images added to --data since never move it into training."""
    files = list_images(config.data)
    if not files:
        raise InputError(f"no images (PNG, JPEG, TIFF, WebP) under {', '.join(config.data)}")
    if config.val:
        return files, list_images(config.val)[: config.val_max_images], []
    if kept is not None:
        held = set(kept)
    elif len(files) >= 2 and config.val_fraction > 0:
        order = np.random.default_rng(config.seed).permutation(len(files))
        n_val = max(1, round(len(files) * config.val_fraction))
        held = {str(files[i]) for i in order[:n_val]}
    else:
        return files, [], []
    val = [f for f in files if str(f) in held]
    files = [f for f in files if str(f) not in held]
    return files, val[: config.val_max_images], val


def data_config(config: TrainConfig, **kw) -> DataConfig:
    return DataConfig(
        task=config.task,
        crop_size=config.crop_size,
        scale_max=config.scale_max,
        vflip=config.vflip,
        p_no_hints=config.p_no_hints,
        max_hints=config.max_hints,
        hint_count=config.hint_count,
        hint_geometric_p=config.hint_geometric_p,
        hint_patch=config.hint_patch,
        p_color_background=config.p_color_background,
        **kw,
    )


def check_options(config: TrainConfig) -> None:
    """One clear line for an option value the run cannot use (before any work)."""
    choices = {"hint_count": HINT_COUNTS, "color_head": COLOR_HEADS, "lr_decay": LR_DECAYS,
               "select_metric": SELECT_METRICS}  # fmt: skip
    for key, allowed in choices.items():
        if getattr(config, key) not in allowed:
            flag = "--" + key.replace("_", "-")
            raise InputError(f"{flag} {getattr(config, key)!r}: choose {', '.join(allowed)}")
    if config.ab_prior_sigma < 0 or (
        config.ab_prior_sigma and config.color_head != "classification"
    ):
        raise InputError(
            f"--ab-prior-sigma {config.ab_prior_sigma:g}: use a value > 0 with "
            "--color-head classification (0: no prior)"
        )
    if not config.unhinted_weight >= 1:
        raise InputError(f"--unhinted-weight {config.unhinted_weight:g}: use 1 (off) or more")
    if config.chroma_weight < 0:
        raise InputError(f"--chroma-weight {config.chroma_weight:g}: use 0 (off) or more")
    if config.lr_decay != "none" and config.max_steps <= 0:
        raise InputError(f"--lr-decay {config.lr_decay} decays to 0 at --max-steps: give it")
    if not 0.0 <= config.lr_decay_start < 1.0:
        raise InputError(f"--lr-decay-start {config.lr_decay_start}: use 0 <= x < 1")
    if not 0.0 < config.hint_geometric_p <= 1.0:
        raise InputError(f"--hint-geometric-p {config.hint_geometric_p}: use 0 < p <= 1")
    m = 2 ** len(config.channels)  # the generator's multiple_of
    if config.crop_size < 16 or config.crop_size % m:
        raise InputError(f"--crop-size {config.crop_size}: use a multiple of {m} of at least 16")
    for flag, value, low in (("--batch-size", config.batch_size, 1),
                             ("--log-every", config.log_every, 1),
                             ("--save-every", config.save_every, 0)):  # fmt: skip
        if value < low:
            raise InputError(f"{flag} {value}: use {low} or more")


def lr_factor(config: TrainConfig, step: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based): 1, then linear or cosine to 0 at
    max_steps over its last (1 - lr_decay_start) share. A pure function of the step, so a
    resumed run (even with a new --max-steps) needs no scheduler state."""
    if config.lr_decay == "none" or config.max_steps <= 0:
        return 1.0
    start = config.lr_decay_start * config.max_steps
    if step < start:
        return 1.0
    t = min(1.0, (step - start) / max(1.0, config.max_steps - start))
    if config.lr_decay == "linear":
        return 1.0 - t
    return 0.5 * (1.0 + math.cos(math.pi * t))


def class_prior(
    files: list[Path], quantizer: AbQuantizer, max_images: int, thumb: int = 64
) -> np.ndarray:
    """Empirical distribution of the ab classes over up to ``max_images`` training images
    (evenly spread over the list; each a thumbnail of long side ``thumb``, over white)."""
    if not files:
        raise InputError("no training images to estimate the color-class prior from")
    pick = np.unique(np.linspace(0, len(files) - 1, min(len(files), max(1, max_images)))
                     .round().astype(int))  # fmt: skip
    samples = []
    for i in pick:
        try:
            rgb, alpha = read_rgb(files[i])
        except (ValueError, cv2.error) as exc:
            warnings.warn(f"class prior: skipping unreadable image {files[i]}: {exc}",
                          stacklevel=2)  # fmt: skip
            continue
        if alpha is not None:
            rgb = composite(rgb, alpha, (1.0, 1.0, 1.0))
        s = thumb / max(rgb.shape[:2])
        if s < 1:
            size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        samples.append(rgb_to_lab(np.ascontiguousarray(rgb, np.float32))[..., 1:].reshape(-1, 2))
    if not samples:
        raise InputError("no readable training image for the color-class prior")
    return class_histogram(quantizer, np.concatenate(samples))


# ----------------------------------------------------------------------------- validation
@dataclass
class ValSet:
    """Fixed validation items: inputs without hints, inputs with hints, targets."""

    plain: torch.Tensor
    hinted: torch.Tensor
    target: torch.Tensor


def build_valset(files: list[Path], config: TrainConfig) -> ValSet | None:
    """Centre crops of the validation images, with 0 and ``val_hints`` hints (fixed seeds)."""
    plain, hinted, target = [], [], []
    for i, f in enumerate(files):
        try:
            rgb, alpha = read_rgb(f)
        except (ValueError, cv2.error) as exc:
            warnings.warn(f"skipping unreadable validation image {f}: {exc}", stacklevel=2)
            continue
        for n, out in ((0, plain), (config.val_hints, hinted)):
            cfg = data_config(config, augment=False, fixed_hints=n)
            inp, tgt = make_item(rgb, alpha, cfg, np.random.default_rng([config.seed, 7, i]))
            out.append(torch.from_numpy(inp))
        target.append(torch.from_numpy(tgt))
    if not target:
        return None
    return ValSet(torch.stack(plain), torch.stack(hinted), torch.stack(target))


def _full_lab(inp: np.ndarray, color: np.ndarray, task: str) -> np.ndarray:
    """HxWx3 Lab from a model input [4,H,W] and a color [2|3,H,W] (ab uses the input L)."""
    if task == "grayscale":
        return np.concatenate([inp[:1], color], 0).transpose(1, 2, 0)
    return color.transpose(1, 2, 0)


#: Logged PSNR of an exact match (metrics.psnr says inf), so that a mean over images stays
#: finite: the value of an MSE of 1e-10.
PSNR_CAP = 100.0


def _psnr(rgb: np.ndarray, ref: np.ndarray) -> float:
    """The engine's PSNR (inkhue_engine.metrics), capped at PSNR_CAP for the logs."""
    return min(metrics.psnr(rgb, ref), PSNR_CAP)


@torch.no_grad()
def predict(gen: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 8) -> np.ndarray:
    """Run ``gen`` (eval mode) over ``x`` in batches; numpy output."""
    was = gen.training
    gen.eval()
    outs = [gen(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)]
    gen.train(was)
    return torch.cat(outs).numpy()


def validate(gen: nn.Module, val: ValSet, task: str, device: torch.device) -> dict[str, Any]:
    """PSNR (sRGB, dB) and RMSE (ab, Lab units) of ``gen`` without and with hints.

    Also the baselines a model has to beat: gray (ab = 0, grayscale task) and the
    flat fill of the hints over the regions (docs/DESIGN.md).
    """
    result: dict[str, Any] = {}
    outputs = {}
    tgt = val.target.numpy()
    for name, x in (("plain", val.plain), ("hinted", val.hinted)):
        pred = predict(gen, x, device)
        outputs[name] = pred
        inp = x.numpy()
        psnr, rmse, de, psnr_b, rmse_b = [], [], [], [], []
        for i in range(len(inp)):
            truth = _full_lab(inp[i], tgt[i], task)
            out = _full_lab(inp[i], pred[i], task)
            ref_rgb = lab_to_rgb(truth)
            out_rgb = lab_to_rgb(out)
            psnr.append(_psnr(out_rgb, ref_rgb))
            rmse.append(float(np.sqrt(np.mean((out[..., 1:] - truth[..., 1:]) ** 2))))
            # as `inkhue evaluate` scores it: the shown (sRGB-clipped) colors against the truth
            de.append(mean_ciede2000(rgb_to_lab(out_rgb), rgb_to_lab(ref_rgb)))
            # baseline: gray without hints, flat fill of the hints with them
            if name == "plain":
                base_ab = np.zeros_like(truth[..., 1:])
            else:
                labels = regions_of(inp[i][0], task)
                base_ab = flat_fill(labels, inp[i][1:3].transpose(1, 2, 0), inp[i][3])
            base = truth.copy()
            base[..., 1:] = base_ab
            rmse_b.append(float(np.sqrt(np.mean((base_ab - truth[..., 1:]) ** 2))))
            if task == "grayscale":  # line art: the baseline has no L of its own
                psnr_b.append(_psnr(lab_to_rgb(base), ref_rgb))
        result[name] = {
            "psnr": float(np.mean(psnr)),
            "rmse_ab": float(np.mean(rmse)),
            "ciede2000": float(np.mean(de)),
        }
        base_name = "gray" if name == "plain" else "flat_fill"
        result[name][f"{base_name}_rmse_ab"] = float(np.mean(rmse_b))
        if psnr_b:
            result[name][f"{base_name}_psnr"] = float(np.mean(psnr_b))
    result["_outputs"] = outputs
    return result


def sample_grid(val: ValSet, outputs: dict[str, np.ndarray], task: str, n: int) -> np.ndarray:
    """uint8 RGB grid, one row per image: input (L + hints) | output | output w/ hints | truth."""
    rows = []
    for i in range(min(n, len(val.target))):
        inp = val.hinted[i].numpy()
        shown = np.zeros((inp.shape[1], inp.shape[2], 3), np.float32)
        shown[..., 0] = inp[0]
        shown[..., 1:] = inp[1:3].transpose(1, 2, 0) * inp[3][..., None]
        cells = [
            lab_to_rgb(shown),
            lab_to_rgb(_full_lab(val.plain[i].numpy(), outputs["plain"][i], task)),
            lab_to_rgb(_full_lab(inp, outputs["hinted"][i], task)),
            lab_to_rgb(_full_lab(inp, val.target[i].numpy(), task)),
        ]
        rows.append(np.concatenate(cells, axis=1))
    return np.clip(np.concatenate(rows, axis=0) * 255 + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- files
def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_png(path: Path, rgb8: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb8[..., ::-1]))
    if not ok:
        raise InkHueError(f"{path}: could not encode the sample grid")
    _atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.tobytes()))


def save_checkpoint(run: Path, state: dict[str, Any], keep: int) -> Path:
    """Write ``ckpt_<step>.pt`` and ``last.pt`` atomically; keep the ``keep`` newest steps."""
    step_path = run / f"ckpt_{state['step']:08d}.pt"
    _atomic_write(step_path, lambda tmp: torch.save(state, tmp))
    _atomic_write(run / LAST, lambda tmp: shutil.copyfile(step_path, tmp))
    old = sorted(run.glob("ckpt_*.pt"))
    for p in old[: max(0, len(old) - max(1, keep))]:
        p.unlink(missing_ok=True)
    return step_path


class JsonlLog:
    """Append-only JSON-lines log (one object per line); flushed per line."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, **record: Any) -> None:
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


# ----------------------------------------------------------------------------- training
def _rng_state(dev: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


@dataclass
class WarmStart:
    """Initial weights of a new run that starts from a trained model (fine-tuning).

    Not a resume: the optimizers, the EMA and the step count start fresh. ``generator``
    (and ``discriminator``, if given) are state dicts for networks built from the run's
    config; ``freeze`` names generator submodules whose weights stay fixed (e.g.
    ``("encoder",)``; their BatchNorm statistics still adapt).
    """

    generator: dict[str, Any]
    discriminator: dict[str, Any] | None = None
    freeze: tuple[str, ...] = ()


#: ``on_step(step, losses)``: called by the main process after every step; ``losses``
#: (loss_d, loss_g, l1, adv, img_s) on logged steps, else None.
StepCallback = Callable[[int, "dict[str, float] | None"], None]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_signals_save() -> Iterator[None]:
    """While training, SIGINT and SIGTERM stop it with a checkpoint (KeyboardInterrupt).

    A run started in the background by a non-interactive shell inherits SIGINT
    *ignored*, and job schedulers stop with SIGTERM: without this, either loses the
    steps since the last save. A handler a caller installed (``inkhue finetune``'s
    cancel) is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replace = {
        signal.SIGINT: (signal.SIG_IGN, signal.SIG_DFL, signal.default_int_handler),
        signal.SIGTERM: (signal.SIG_DFL,),
    }
    old = {}
    for sig, defaults in replace.items():
        current = signal.getsignal(sig)
        if current in defaults:
            old[sig] = current
            signal.signal(sig, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def train(
    config: TrainConfig,
    resume: bool = False,
    *,
    warm_start: WarmStart | None = None,
    on_step: StepCallback | None = None,
) -> int:
    """Run (or resume) a training run described by ``config``. Returns the exit code:
    0 when a stop condition is reached, 130 after Ctrl-C or SIGTERM (a checkpoint is saved
    first).

    ``warm_start``: initial weights of a new run (refused with ``resume``); ``on_step``:
    progress callback of the main process (see StepCallback).
    """
    if resume and warm_start is not None:
        raise InputError("a resumed run continues from its checkpoint: no warm start")
    dctx = setup_distributed(config.device)
    try:
        with stop_signals_save():
            return _train(config, resume, dctx, warm_start, on_step)
    finally:
        if dctx.enabled and dist.is_initialized():
            dist.destroy_process_group()


def cpu_bf16_supported() -> bool:
    """Whether oneDNN runs bf16 convolutions natively here (AVX-512 BF16 or AMX)."""
    mkldnn = torch.backends.mkldnn
    return bool(mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def amp_context(amp: str, dev: torch.device) -> Callable[[], Any]:
    """A factory of autocast contexts for ``--amp`` (off, bf16, auto). bf16 needs no loss
    scaling (float32's exponent range); weights, optimizer state and the EMA stay float32.
    bf16 is refused where the device cannot run it, rather than silently run at full precision."""
    if amp not in AMP_CHOICES:
        raise InputError(f"--amp {amp}: unknown; choose {', '.join(AMP_CHOICES)}")
    checked = {"cpu": cpu_bf16_supported, "cuda": torch.cuda.is_bf16_supported}.get(dev.type)
    supported = checked is not None and checked()
    if amp == "auto":  # bf16 where the hardware runs it natively, else full precision
        amp = "bf16" if supported else "off"
    if amp == "off":
        return lambda: torch.autocast(dev.type, enabled=False)
    if checked is not None and not supported:
        what = "CPU (or torch build)" if dev.type == "cpu" else "GPU"
        raise InputError(f"--amp bf16: this {what} has no bf16 support; use --amp off")
    return lambda: torch.autocast(dev.type, dtype=torch.bfloat16)


def _train(
    config: TrainConfig,
    resume: bool,
    dctx: Dist,
    warm_start: WarmStart | None = None,
    on_step: StepCallback | None = None,
) -> int:
    run = Path(config.out)
    dev = dctx.device
    last = run / LAST
    # a run killed before its first periodic save may hold best.pt only (a full checkpoint)
    source = last if last.is_file() else run / BEST
    if resume and not source.is_file():
        raise InputError(f"{last}: no checkpoint to resume from")
    if not resume and (source.is_file() or any(run.glob("ckpt_*.pt"))):
        raise InputError(f"{run} already holds a run: add --resume, or choose another --out")
    check_options(config)
    val_list = run / VAL_LIST
    kept = val_list.read_text("utf-8").splitlines() if resume and val_list.is_file() else None
    train_files, val_files, held_out = split_files(config, kept)
    if dctx.main:
        config.save(run)
        if held_out and kept is None:
            write_bytes_atomic(val_list, "".join(f"{f}\n" for f in held_out).encode("utf-8"))
    if dctx.enabled:
        dist.barrier()
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    if dev.type == "cpu":
        cv2.setNumThreads(1)  # torch owns the cores; OpenCV threads would fight it

    dataset = ColorImageDataset(
        train_files, data_config(config), seed=config.seed + 1000 * dctx.rank,
        repeat=config.repeat,
    )  # fmt: skip
    base_sampler = DistributedSampler(
        dataset, num_replicas=dctx.world, rank=dctx.rank, shuffle=True, seed=config.seed
    )
    sampler = SkipSampler(base_sampler)
    per_rank = len(base_sampler)
    workers = config.workers if config.workers >= 0 else (4 if dev.type == "cuda" else 0)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        worker_init_fn=worker_init,
        persistent_workers=workers > 0,
        pin_memory=dev.type == "cuda",
        drop_last=per_rank >= config.batch_size,
    )
    valset = build_valset(val_files, config) if dctx.main else None

    gen_kwargs = {
        "task": config.task,
        "channels": tuple(config.channels),
        "n_res": config.n_res,
        "global_context": config.global_context,
        "color_head": config.color_head,
        "temperature": config.temperature,
        "ab_prior_sigma": config.ab_prior_sigma,
    }
    disc_kwargs = {"task": config.task, "channels": tuple(config.d_channels)}
    G = Generator(**gen_kwargs).to(dev)
    D = Discriminator(**disc_kwargs).to(dev)
    if warm_start is None and config.init_from and not resume:
        g_state, d_state, lines = load_init(config.init_from, G, D, config.task)
        warm_start = WarmStart(generator=g_state, discriminator=d_state)
        if dctx.main:
            for line in lines:
                print(f"init from {config.init_from}: {line}", file=sys.stderr)
    if warm_start is not None:  # before the EMA copies G
        G.load_state_dict(warm_start.generator)
        if warm_start.discriminator is not None:
            D.load_state_dict(warm_start.discriminator)
        for name in warm_start.freeze:
            getattr(G, name).requires_grad_(False)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    ema = AveragedModel(G, multi_avg_fn=ema_warmup_avg_fn(config.ema_decay), use_buffers=True)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    gan = GANLoss(
        real_label=config.real_label,
        fake_label=config.fake_label,
        noise=config.label_noise,
        noise_kind=config.label_noise_kind,
        flip_prob=config.label_flip,
        seed=config.seed + dctx.rank,
    )

    torch.manual_seed(config.seed + dctx.rank)  # but not the same random stream after
    step, epoch, batch_in_epoch = 0, 0, 0
    quantizer = AbQuantizer() if config.color_head == "classification" else None
    class_w: torch.Tensor | None = None
    best: dict[str, Any] = {"metric": config.select_metric, "value": None, "step": None}
    if resume:
        ckpt = torch.load(source, map_location=dev, weights_only=True)
        if ckpt.get("class_weights") is not None:
            class_w = ckpt["class_weights"].to(dev)
        if (ckpt.get("best") or {}).get("metric") == config.select_metric:
            best = dict(ckpt["best"])
        # best.pt may be newer than the last periodic save (read once: it may be the source)
        if source != run / BEST and (run / BEST).is_file():
            kept = torch.load(run / BEST, map_location="cpu", weights_only=True).get("best") or {}
            if (
                kept.get("metric") == config.select_metric
                and kept.get("value") is not None
                and (best["value"] is None or kept["value"] < best["value"])
            ):
                best = dict(kept)
        G.load_state_dict(ckpt["generator"])
        D.load_state_dict(ckpt["discriminator"])
        ema.load_state_dict(ckpt["ema"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        gan.set_rng_state(ckpt["rng"]["gan"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and dev.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], dev)
        step, epoch, batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        del ckpt

    if quantizer is not None and class_w is None:  # the same weights on every rank
        prior = class_prior(train_files, quantizer, config.class_prior_images)
        class_w = torch.from_numpy(rebalance_weights(quantizer, prior)).to(dev)

    G_train, D_train = G, D
    if dctx.enabled:
        ids = [dev.index] if dev.type == "cuda" else None
        G_train = nn.parallel.DistributedDataParallel(G, device_ids=ids)
        D_train = nn.parallel.DistributedDataParallel(D, device_ids=ids)
    D_plain = D  # the generator's adversarial pass: no DDP gradient sync for D
    autocast = amp_context(config.amp, dev)
    if config.compile:
        G_train, D_train = torch.compile(G_train), torch.compile(D_train)
        D_plain = torch.compile(D)

    def state() -> dict[str, Any]:
        return {
            "format": CKPT_FORMAT,
            "generator_kwargs": gen_kwargs,
            "discriminator_kwargs": disc_kwargs,
            "generator": G.state_dict(),
            "discriminator": D.state_dict(),
            "ema": ema.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "rng": {"gan": gan.rng_state(), **_rng_state(dev)},
            "class_weights": None if class_w is None else class_w.cpu(),
            "best": dict(best),
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "config": dataclasses.asdict(config),
        }

    log = JsonlLog(run / LOG) if dctx.main else None
    if dctx.main:
        (run / "samples").mkdir(exist_ok=True)
    last_val = [-1]

    def run_validation() -> None:
        if valset is None or log is None or last_val[0] == step:
            return
        last_val[0] = step
        res = validate(ema.module, valset, config.task, dev)
        outputs = res.pop("_outputs")
        log.write(kind="val", step=step, epoch=epoch, **res)
        if config.grid_images > 0:
            grid = sample_grid(valset, outputs, config.task, config.grid_images)
            write_png(run / "samples" / f"step_{step:08d}.png", grid)
        line = " ".join(f"{k}: psnr {v['psnr']:.2f} rmse_ab {v['rmse_ab']:.2f} "
                        f"dE {v['ciede2000']:.2f}" for k, v in res.items())  # fmt: skip
        score = float(np.mean([res[k][config.select_metric] for k in ("plain", "hinted")]))
        if best["value"] is None or score < best["value"]:  # lower is better for both metrics
            best.update(value=score, step=step)
            _atomic_write(run / BEST, lambda tmp: torch.save(state(), tmp))
            log.write(kind="best", step=step, metric=config.select_metric, value=score)
            line += f" -> {BEST} ({config.select_metric} {score:.3f})"
        print(f"[val step {step}] {line}", file=sys.stderr, flush=True)

    if dctx.main:
        print(
            f"training {config.task} on {len(train_files)} images "
            f"({len(val_files)} for validation), {dctx.world} process(es) on {dev}; "
            f"run folder {run}; starting at step {step}",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    from tqdm import tqdm

    bar = tqdm(
        total=config.max_steps or None, initial=step, unit="step", dynamic_ncols=True,
        disable=not (dctx.main and config.progress),
    )  # fmt: skip
    start = time.monotonic()
    window_t, window_n = time.monotonic(), 0
    interrupted = False
    stop = False
    try:
        while not stop:
            if config.epochs and epoch >= config.epochs:
                break
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            sampler.skip = batch_in_epoch * config.batch_size
            got_batch = False
            for inp, tgt in loader:
                got_batch = True
                inp = inp.to(dev, non_blocking=True).contiguous(memory_format=fmt)
                tgt = tgt.to(dev, non_blocking=True).contiguous(memory_format=fmt)
                L = inp[:, :1]
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] = config.lr * lr_factor(config, step)
                with autocast():
                    fake, logits = G_train(inp, with_logits=True)
                    # discriminator: real pairs vs generated pairs
                    D.requires_grad_(True)
                    loss_d = 0.5 * (
                        gan(D_train(L, tgt), True) + gan(D_train(L, fake.detach()), False)
                    )
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                # generator: L1 on the colors + fool the discriminator
                D.requires_grad_(False)
                with autocast():
                    adv = gan(D_plain(L, fake), True, for_generator=True)
                    pix_w = unhinted_pixel_weights(inp[:, 3:4], config.unhinted_weight)
                    l1 = color_l1(fake.float(), tgt, config.l1_weight, pix_w)
                    loss_g = l1 + config.gan_weight * adv
                    if config.chroma_weight:
                        chroma = chroma_match(fake, tgt, config.chroma_weight)
                        loss_g = loss_g + chroma
                    if logits is not None:  # classification head: rebalanced cross-entropy
                        target_cls = quantizer.encode_torch(tgt[:, -2:])
                        ce = rebalanced_cross_entropy(logits, target_cls, class_w, pix_w)
                        loss_g = loss_g + config.class_weight * ce
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                ema.update_parameters(G)

                step += 1
                batch_in_epoch += 1
                window_n += inp.shape[0] * dctx.world
                bar.update(1)
                vals = None
                if step % config.log_every == 0 or step == 1:
                    now = time.monotonic()
                    rate = window_n / max(now - window_t, 1e-9)
                    window_t, window_n = now, 0
                    vals = {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                            "l1": l1.item(), "adv": adv.item()}  # fmt: skip
                    if logits is not None:
                        vals["ce"] = ce.item()
                    if config.chroma_weight:
                        vals["chroma"] = chroma.item()
                    vals["lr"] = opt_g.param_groups[0]["lr"]
                    bar.set_postfix(d=f"{vals['loss_d']:.3f}", l1=f"{vals['l1']:.2f}",
                                    adv=f"{vals['adv']:.2f}", img_s=f"{rate:.1f}")  # fmt: skip
                    if log is not None:
                        log.write(kind="train", step=step, epoch=epoch, img_s=rate,
                                  minutes=(time.monotonic() - start) / 60, **vals)  # fmt: skip
                    vals["img_s"] = rate
                if on_step is not None and dctx.main:
                    on_step(step, vals)
                if config.val_every and step % config.val_every == 0:
                    run_validation()
                if dctx.main and config.save_every and step % config.save_every == 0:
                    save_checkpoint(run, state(), config.keep)
                stop = _should_stop(config, step, start, dctx)
                if stop:
                    break
            else:
                epoch += 1
                batch_in_epoch = 0
                if not config.val_every and (last_val[0] < 0 or step - last_val[0] >= 100):
                    run_validation()  # each epoch, but small sets' epochs: >= 100 steps apart
                if not got_batch and sampler.skip == 0:
                    raise InputError("the training set gives no batch: add images")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if dctx.main:
        if interrupted:
            print(f"interrupted at step {step}: saving a checkpoint", file=sys.stderr)
        elif config.val_every:  # end-of-run validation when it is not per epoch
            run_validation()
        path = save_checkpoint(run, state(), config.keep)
        print(f"saved {path} and {run / LAST} at step {step}", file=sys.stderr, flush=True)
        if log is not None:
            log.close()
    if dctx.enabled and not interrupted:
        dist.barrier()
    return 130 if interrupted else 0


def _should_stop(config: TrainConfig, step: int, start: float, dctx: Dist) -> bool:
    stop = bool(config.max_steps and step >= config.max_steps)
    if config.max_minutes and (time.monotonic() - start) / 60 >= config.max_minutes:
        stop = True
    if dctx.enabled and config.max_minutes:  # clocks differ: every rank stops together
        flag = torch.tensor([int(stop)], device=dctx.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        stop = bool(flag.item())
    return stop


def main(argv: list[str] | None = None) -> int:
    """``python -m inkhue_training.train`` (and torchrun): the ``inkhue train`` flags."""
    parser = argparse.ArgumentParser(prog="inkhue-train", description=__doc__.split("\n")[0])
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return train(config_from_args(args), resume=args.resume)
    except InkHueError as exc:
        print(f"inkhue train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
