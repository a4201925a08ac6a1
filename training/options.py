"""Every training option in one dataclass, built from argparse flags, saved as JSON.

A run folder holds ``config.json`` next to its checkpoints; ``--resume`` reloads it,
so a resumed run trains the same model on the same data with the same losses. Only
options that do not change what is learned (how long, how often to save, device,
workers) may be given again on resume; others given differently are refused.
This module does not import torch (it builds the ``inkhue train`` parser).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from inkhue_engine.errors import InputError

CONFIG_NAME = "config.json"


@dataclass
class TrainConfig:
    """All options of a training run (defaults after the CPU probe in docs/TRAINING.md)."""

    # data
    data: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    task: str = "grayscale"
    out: str = "runs/inkhue"
    trained_on: str = ""
    val_fraction: float = 0.05
    val_max_images: int = 64
    crop_size: int = 128
    scale_max: float = 2.0
    vflip: bool = False
    repeat: int = 1
    p_no_hints: float = 0.3
    max_hints: int = 30
    hint_count: str = "uniform"  # or "geometric" (Zhang et al. SIGGRAPH 2017)
    hint_geometric_p: float = 0.125
    hint_patch: int = 3
    p_color_background: float = 0.3
    workers: int = -1  # -1: 0 on CPU, 4 on CUDA
    # model
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    n_res: int = 5
    d_channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    global_context: bool = False
    color_head: str = "regression"  # or "classification" (Zhang et al. ECCV 2016)
    class_weight: float = 1.0  # weight of the rebalanced cross-entropy (classification)
    class_prior_images: int = 500  # training images read for the class prior
    temperature: float = 0.38  # classification head: annealed-mean T (color_classes.TEMPERATURE)
    ab_prior_sigma: float = 0.0  # classification head: regression prior's std (0: none)
    # optimization
    batch_size: int = 16
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    l1_weight: float = 100.0
    gan_weight: float = 1.0
    chroma_weight: float = 0.0  # per-image chroma match (losses.chroma_match); 0: off
    unhinted_weight: float = 1.0  # losses.unhinted_pixel_weights; 1: off
    real_label: float = 0.9
    fake_label: float = 0.0
    label_noise: float = 0.05
    label_noise_kind: str = "uniform"
    label_flip: float = 0.05
    ema_decay: float = 0.999
    lr_decay: str = "none"  # "linear" or "cosine" to 0 over the last part of max_steps
    lr_decay_start: float = 0.5  # share of max_steps before the decay starts
    # run
    init_from: str = ""  # checkpoint whose weights start a new run (training/warm_start.py)
    seed: int = 0
    device: str = "auto"
    channels_last: bool = False
    compile: bool = False
    amp: str = "off"  # "bf16": autocast convs to bfloat16 (2x on CPUs with AVX-512 BF16)
    max_steps: int = 0  # 0 = no limit
    max_minutes: float = 0.0  # 0 = no limit
    epochs: int = 0  # 0 = no limit
    save_every: int = 500
    keep: int = 3
    val_every: int = 0  # 0 = every epoch
    val_hints: int = 10
    select_metric: str = "ciede2000"  # best.pt: lowest mean CIEDE2000 on validation
    grid_images: int = 6
    log_every: int = 10
    progress: bool = True

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown training options in config: {', '.join(unknown)}")
        return cls(**values)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` into ``folder`` atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_NAME
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json() + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TrainConfig:
        path = Path(folder) / CONFIG_NAME
        if not path.is_file():
            raise InputError(f"{path}: not found; is {folder} a training run folder?")
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: unreadable training config ({exc})") from exc
        return cls.from_dict(values)


HINT_COUNTS = ("uniform", "geometric")
COLOR_HEADS = ("regression", "classification")
LR_DECAYS = ("none", "linear", "cosine")
#: ``--select-metric``: what best.pt is chosen by (lower is better for both).
SELECT_METRICS = ("ciede2000", "rmse_ab")

#: ``--amp`` values: off, bf16 autocast, or bf16 where the hardware runs it natively.
AMP_CHOICES = ("off", "bf16", "auto")

#: Options that may change when a run is resumed: how long and how it runs, not what it learns.
RESUME_OVERRIDABLE = {
    "max_steps", "max_minutes", "epochs", "save_every", "keep", "val_every", "grid_images",
    "log_every", "progress", "device", "workers", "compile", "channels_last", "amp",
    "select_metric",
}  # fmt: skip


def _bool(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=help)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every TrainConfig option as a flag. Defaults are SUPPRESSed: only given flags
    appear in the namespace (so --resume can tell what was given)."""
    d = TrainConfig()
    parser.argument_default = argparse.SUPPRESS
    g = parser.add_argument_group("data")
    g.add_argument("--data", nargs="+", metavar="DIR", help="folders of colored training images")
    g.add_argument(
        "--val",
        nargs="+",
        metavar="DIR",
        help="validation image folders (default: hold out --val-fraction of --data)",
    )
    g.add_argument("--task", choices=["grayscale", "lineart"], help="what the model colorizes")
    g.add_argument(
        "--out",
        metavar="RUN_DIR",
        required=True,
        help="run folder: config.json, checkpoints, log.jsonl, samples/",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        default=False,
        help="continue the run in --out from its last checkpoint",
    )
    g.add_argument("--trained-on", help="description stored in exported models' metadata")
    g.add_argument("--val-fraction", type=float, help=f"default {d.val_fraction}")
    g.add_argument("--val-max-images", type=int, help=f"default {d.val_max_images}")
    g.add_argument("--crop-size", type=int, help=f"training crop size, px (default {d.crop_size})")
    g.add_argument(
        "--scale-max",
        type=float,
        help=f"big images: short side scaled to crop * U(1, this) ({d.scale_max})",
    )
    _bool(g, "vflip", "random vertical flips too (default off)")
    g.add_argument("--repeat", type=int, help="visits of each image per epoch (default 1)")
    g.add_argument("--p-no-hints", type=float, help=f"default {d.p_no_hints}")
    g.add_argument("--max-hints", type=int, help=f"default {d.max_hints}")
    g.add_argument(
        "--hint-count",
        choices=HINT_COUNTS,
        help="how many hints an item gets: uniform 1..max-hints (default), or "
        "geometric with --hint-geometric-p, capped at --max-hints (Zhang et al. 2017)",
    )
    g.add_argument("--hint-geometric-p", type=float, help=f"default {d.hint_geometric_p}")
    g.add_argument("--hint-patch", type=int, help=f"default {d.hint_patch}")
    g.add_argument("--p-color-background", type=float, help=f"default {d.p_color_background}")
    g.add_argument("--workers", type=int, help="DataLoader workers (default: 0 on CPU, 4 on CUDA)")
    g = parser.add_argument_group("model")
    g.add_argument("--channels", type=int, nargs="+", help=f"default {d.channels}")
    g.add_argument("--n-res", type=int, help=f"residual blocks (default {d.n_res})")
    g.add_argument("--d-channels", type=int, nargs="+", help=f"default {d.d_channels}")
    _bool(
        g,
        "global-context",
        "fuse image-level features into the bottleneck (Iizuka et al. 2016; default off)",
    )
    g.add_argument(
        "--color-head",
        choices=COLOR_HEADS,
        help="regression (default) or classification over quantized ab with class "
        "rebalancing and annealed-mean decoding (Zhang et al. 2016)",
    )
    g.add_argument(
        "--class-weight",
        type=float,
        help=f"weight of the rebalanced cross-entropy (default {d.class_weight})",
    )
    g.add_argument(
        "--ab-prior-sigma",
        type=float,
        metavar="S",
        help="classification head: keep the regression head and add its color to the class "
        "logits as a Gaussian of std S (ab units), the class head learning the rest; with "
        f"--init-from a regression checkpoint the run starts from its colors (default "
        f"{d.ab_prior_sigma:g}: no prior)",
    )
    g.add_argument(
        "--class-prior-images",
        type=int,
        help=f"training images read for the class prior ({d.class_prior_images})",
    )
    g = parser.add_argument_group("optimization")
    g.add_argument("--batch-size", type=int, help=f"per process (default {d.batch_size})")
    g.add_argument("--lr", type=float, help=f"default {d.lr}")
    g.add_argument("--beta1", type=float, help=f"default {d.beta1}")
    g.add_argument("--beta2", type=float, help=f"default {d.beta2}")
    g.add_argument("--l1-weight", type=float, help=f"default {d.l1_weight}")
    g.add_argument("--gan-weight", type=float, help=f"default {d.gan_weight}")
    g.add_argument(
        "--chroma-weight",
        type=float,
        help="weight of the per-image chroma match: each output as colorful as its truth "
        f"overall, against L1's hedging toward gray (default {d.chroma_weight:g}: off)",
    )
    g.add_argument(
        "--unhinted-weight",
        type=float,
        help="in items with hints, pixels outside the hinted regions count this many times "
        "in the L1 and class losses, against copying hints only (default "
        f"{d.unhinted_weight:g}: off)",
    )
    g.add_argument("--real-label", type=float, help=f"default {d.real_label}")
    g.add_argument("--fake-label", type=float, help=f"default {d.fake_label}")
    g.add_argument("--label-noise", type=float, help=f"default {d.label_noise}")
    g.add_argument("--label-noise-kind", choices=["uniform", "gaussian"])
    g.add_argument("--label-flip", type=float, help=f"default {d.label_flip}")
    g.add_argument("--ema-decay", type=float, help=f"default {d.ema_decay}")
    g.add_argument(
        "--lr-decay",
        choices=LR_DECAYS,
        help="learning-rate decay to 0 at --max-steps (needs --max-steps; default none)",
    )
    g.add_argument(
        "--lr-decay-start",
        type=float,
        help=f"share of --max-steps before the decay starts ({d.lr_decay_start})",
    )
    g = parser.add_argument_group("run")
    g.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start a new run from this checkpoint's weights where the shapes match "
        "(new parts such as --global-context start fresh; not a resume)",
    )
    g.add_argument("--seed", type=int, help="default 0")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    _bool(g, "channels-last", "channels_last memory format")
    _bool(
        g,
        "compile",
        "torch.compile the networks (measured on the 2-core CPU: no gain in "
        "float32, 27%% slower with --amp bf16)",
    )
    g.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        help="mixed precision: bf16 autocast (weights and optimizer stay float32; "
        "2x on CPUs with AVX-512 BF16); auto = bf16 where supported; default off",
    )
    g.add_argument("--max-steps", type=int, help="stop after this many steps (0 = no limit)")
    g.add_argument("--max-minutes", type=float, help="stop after this many minutes")
    g.add_argument("--epochs", type=int, help="stop after this many epochs")
    g.add_argument("--save-every", type=int, help=f"checkpoint every N steps ({d.save_every})")
    g.add_argument("--keep", type=int, help=f"step checkpoints kept (default {d.keep})")
    g.add_argument(
        "--val-every",
        type=int,
        help="validate every N steps (default: each epoch, >= 100 steps apart)",
    )
    g.add_argument("--val-hints", type=int, help=f"hints in the hinted validation ({d.val_hints})")
    g.add_argument(
        "--select-metric",
        choices=SELECT_METRICS,
        help="validation metric (mean of 0 and --val-hints hints) that picks best.pt, "
        "the checkpoint to ship (default ciede2000)",
    )
    g.add_argument("--grid-images", type=int, help=f"images in the sample grid ({d.grid_images})")
    g.add_argument("--log-every", type=int, help=f"steps between log lines ({d.log_every})")
    _bool(g, "progress", "tqdm progress bar (default on)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from parsed flags; on --resume, the run's config.json with allowed overrides."""
    given = {
        k: v for k, v in vars(args).items()
        if k in {f.name for f in dataclasses.fields(TrainConfig)}
    }  # fmt: skip
    # absolute, so that --resume from another directory reads the same folders
    for key in ("data", "val"):
        if key in given:
            given[key] = [str(Path(p).resolve()) for p in given[key]]
    if given.get("init_from"):
        given["init_from"] = str(Path(given["init_from"]).resolve())
    if getattr(args, "resume", False):
        saved = TrainConfig.load(args.out)

        def was(key: str):  # a config.json of before this fix may hold relative paths
            value = getattr(saved, key)
            if key in ("data", "val"):
                return [str(Path(p).resolve()) for p in value]
            if key == "init_from" and value:
                return str(Path(value).resolve())
            return value

        changed = sorted(
            k for k, v in given.items()
            if k not in RESUME_OVERRIDABLE and k != "out" and v != was(k)
        )  # fmt: skip
        if changed:
            raise InputError(
                f"--resume keeps the run's options; these differ from {args.out}/config.json: "
                f"{', '.join(changed)} (start a new --out instead)"
            )
        overrides = {k: v for k, v in given.items() if k in RESUME_OVERRIDABLE}
        return dataclasses.replace(saved, out=str(args.out), **overrides)
    if not given.get("data"):
        raise InputError("inkhue train needs --data DIR (folders of colored images)")
    if "task" not in given:
        raise InputError("inkhue train needs --task grayscale or --task lineart")
    return TrainConfig(**given)
