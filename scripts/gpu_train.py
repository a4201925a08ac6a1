"""Train a base model on a lent GPU in runs of under 10 minutes, resumable across sessions.

Documented in docs/TRAINING.md. Two steps:

1. Here (any machine with the corpus): pack the corpus small enough to travel with the
   working tree (the device tool sends at most 64 MiB, the repo included). A corpus too
   big for one pack travels in shards, every N-th training image, one shard a run::

       python scripts/gpu_train.py pack --corpus /work/data/corpus --task grayscale \\
           --out .gpu/pack-grayscale-0 [--shard 0/2]

2. On the device machine, one command per run (its $OUT comes back)::

       python3 scripts/gpu_train.py run --task grayscale --pack .gpu/pack-grayscale-0 \\
           --out $OUT [--resume-from .gpu/grayscale-portable.pt] [--minutes 8]

   A run trains for ``--minutes`` (training stops itself, saves, validates), then writes
   into OUT: ``<task>-portable.pt`` (what the next run resumes from: generator,
   discriminator and EMA in float16, step, class weights, the best score and the best
   EMA weights; the optimizer moments are left out to fit the transfer limits, so Adam
   restarts), ``<task>.onnx`` (the best checkpoint by the validation metric, exported
   with an ONNX Runtime parity check), ``log.jsonl`` and ``config.json``.
   Copy ``<task>-portable.pt`` back into ``.gpu/`` (ignored by git) and name it with
   ``--resume-from`` next time.

Training options (the new heads, hint counts, decay) are given after ``--`` on the first
run; later runs keep the first run's options (stored in the portable checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _import_path() -> None:
    """Make inkhue_engine / inkhue_training importable from the repo without installing
    it (the device machine has torch, OpenCV, scikit-image and ONNX Runtime, and no
    network to pip-install the project)."""
    try:
        import inkhue_training  # noqa: F401
    except ImportError:
        site = Path(tempfile.mkdtemp(prefix="inkhue_site_"))
        (site / "inkhue_engine").symlink_to(REPO / "engine")
        (site / "inkhue_training").symlink_to(REPO / "training")
        sys.path.insert(0, str(site))


_import_path()

#: What the device tool sends with a call at most: the repo's files (tracked, or untracked
#: and not ignored), the pack and a portable checkpoint to resume from (~12 MB).
TRAVEL_LIMIT_MIB = 64.0
PORTABLE_MIB = 12.0
PORTABLE_FORMAT = "inkhue-portable-1"
#: Defaults for a run on an H200 (docs/TRAINING.md); any can be overridden after ``--``.
GPU_DEFAULTS = [
    "--device", "cuda", "--amp", "bf16", "--channels-last", "--workers", "14",
    "--batch-size", "64", "--save-every", "1000", "--keep", "1", "--val-every", "500",
    "--log-every", "50", "--no-progress",
]  # fmt: skip


# ----------------------------------------------------------------------------- pack
def default_budget_mib(repo: Path = REPO) -> float:
    """What a pack may weigh: the travel limit less the repo's files that travel, a portable
    checkpoint and 1 MiB to spare. Measured, since the repo grows (39 MiB on 2026-12-02)."""
    from inkhue_engine.errors import InputError

    # what the device tool sends: tracked files and untracked ones git does not ignore
    cmd = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, check=False)
    if proc.returncode != 0:
        raise InputError(
            f"{repo}: git ls-files failed, so the repo's size is unknown; give --budget-mib"
        )
    files = (repo / name for name in proc.stdout.decode("utf-8", "replace").split("\0") if name)
    repo_mib = sum(f.stat().st_size for f in files if f.is_file()) / 2**20
    return TRAVEL_LIMIT_MIB - repo_mib - PORTABLE_MIB - 1.0


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 0 <= I < N: the shard of every N-th training image from the I-th."""
    try:
        index, count = (int(t) for t in text.split("/"))
    except ValueError:
        index = count = -1
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: use I/N with 0 <= I < N, e.g. 0/2")
    return index, count


def pack(
    corpus: Path,
    task: str,
    out: Path,
    side: int,
    quality: int,
    budget_mib: float,
    shard: tuple[int, int] = (0, 1),
) -> int:
    """Write ``out/train`` (shard ``(i, n)``: every n-th training image from the i-th, in
    name order) and ``out/dev`` (all of it) as WebP images of long side <= ``side``;
    refuse (exit 1, nothing left behind) when they exceed ``budget_mib``."""
    import cv2

    from inkhue_engine.errors import InputError

    src = corpus / task
    if not (src / "train").is_dir():
        raise InputError(
            f"{src}/train: not found; build the corpus first "
            "(python -m inkhue_training.corpus --out CORPUS)"
        )
    tmp = Path(tempfile.mkdtemp(prefix=".pack.", dir=out.parent if out.parent.is_dir() else None))
    total = count = 0
    index, shards = shard
    for split in ("train", "dev"):
        (tmp / split).mkdir()
        paths = sorted((src / split).glob("*.png"))
        for path in paths[index::shards] if split == "train" else paths:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(f"{path}: unreadable image in the corpus")
            h, w = img.shape[:2]
            s = side / max(h, w)
            if s < 1:
                img = cv2.resize(
                    img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
                )
            ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, quality])
            if not ok:
                raise InputError(f"{path}: OpenCV could not encode WebP")
            (tmp / split / (path.stem + ".webp")).write_bytes(buf.tobytes())
            total += len(buf)
            count += 1
    mib = total / 2**20
    if mib > budget_mib:
        shutil.rmtree(tmp)
        print(
            f"pack: {count} images take {mib:.1f} MiB, over the {budget_mib:.1f} MiB budget: "
            f"pack in more shards (--shard 0/{2 * shards}) or use a smaller --side or --quality",
            file=sys.stderr,
        )
        return 1
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    print(f"pack: {count} images, {mib:.1f} MiB (budget {budget_mib:.1f}) in {out}")
    return 0


# ----------------------------------------------------------------------------- portable
def _half(state: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def _full(state: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def write_portable(run: Path, dest: Path, previous: dict | None = None) -> dict:
    """A small resume file from the run's last.pt (and best.pt): float16 weights, no
    optimizer moments. The best EMA weights come from best.pt when this run wrote one,
    else from the ``previous`` portable."""
    import torch

    last = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    best_ema = None
    if (run / "best.pt").is_file():
        best_ema = _half(torch.load(run / "best.pt", map_location="cpu",
                                    weights_only=False)["ema"])  # fmt: skip
    elif previous is not None:
        best_ema = previous.get("best_ema")
    portable = {
        "format": PORTABLE_FORMAT,
        "config": last["config"],
        "generator_kwargs": last["generator_kwargs"],
        "discriminator_kwargs": last["discriminator_kwargs"],
        "generator": _half(last["generator"]),
        "discriminator": _half(last["discriminator"]),
        "ema": _half(last["ema"]),
        "step": last["step"],
        "epoch": last["epoch"],
        "batch_in_epoch": last["batch_in_epoch"],
        "class_weights": last.get("class_weights"),
        "best": last.get("best"),
        "best_ema": best_ema,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    torch.save(portable, tmp)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a normal file
    os.replace(tmp, dest)
    return portable


def restore_portable(portable: dict, run: Path, config) -> None:
    """Turn a portable file into ``run/last.pt`` that ``train(resume=True)`` continues:
    fresh optimizer state (Adam restarts) and fresh random streams."""
    import torch

    from inkhue_training.losses import GANLoss
    from inkhue_training.networks import Discriminator, Generator
    from inkhue_training.train import CKPT_FORMAT, LAST, save_checkpoint

    G = Generator(**portable["generator_kwargs"])
    D = Discriminator(**portable["discriminator_kwargs"])
    G.load_state_dict(_full(portable["generator"]))
    D.load_state_dict(_full(portable["discriminator"]))
    betas = (config.beta1, config.beta2)  # a loaded state dict sets them: the run's own
    opt = {name: torch.optim.Adam(net.parameters(), lr=config.lr, betas=betas).state_dict()
           for name, net in (("opt_g", G), ("opt_d", D))}  # fmt: skip
    state = {
        "format": CKPT_FORMAT,
        "generator_kwargs": portable["generator_kwargs"],
        "discriminator_kwargs": portable["discriminator_kwargs"],
        "generator": G.state_dict(),
        "discriminator": D.state_dict(),
        "ema": _full(portable["ema"]),
        **opt,
        "rng": {
            "gan": GANLoss(seed=config.seed + portable["step"]).rng_state(),
            "torch": torch.manual_seed(config.seed + portable["step"]).get_state(),
        },
        "step": portable["step"],
        "epoch": portable["epoch"],
        "batch_in_epoch": portable["batch_in_epoch"],
        "class_weights": portable.get("class_weights"),
        "best": portable.get("best"),
        "config": dataclasses.asdict(config),
    }
    run.mkdir(parents=True, exist_ok=True)
    config.save(run)
    save_checkpoint(run, state, keep=1)
    assert (run / LAST).is_file()


# ----------------------------------------------------------------------------- run
def run(args: argparse.Namespace, train_args: list[str]) -> int:
    """One training run of ``args.minutes``; writes the portable file, the best model as
    ONNX, the log and the config into ``args.out``."""
    import torch

    from inkhue_training import train as train_mod
    from inkhue_training.export import export_generator, generator_from_checkpoint
    from inkhue_training.options import TrainConfig, add_train_arguments, config_from_args

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="inkhue_run_"))
    run_dir = work / f"run-{args.task}"
    pack_dir = Path(args.pack)
    previous = None
    overrides = {
        "max_minutes": args.minutes,
        "out": str(run_dir),
        "data": [str(pack_dir / "train")],
        "val": [str(pack_dir / "dev")],
    }
    if args.resume_from:
        previous = torch.load(args.resume_from, map_location="cpu", weights_only=False)
        if previous.get("format") != PORTABLE_FORMAT:
            print(f"{args.resume_from}: not a portable checkpoint of this script", file=sys.stderr)
            return 2
        cfg = TrainConfig.from_dict(previous["config"])
        if cfg.task != args.task:
            print(f"{args.resume_from}: a {cfg.task} run, not {args.task}", file=sys.stderr)
            return 2
        p = argparse.ArgumentParser()
        add_train_arguments(p)  # only run-time flags may change on resume
        given = p.parse_args(["--out", str(run_dir), "--resume", *GPU_DEFAULTS, *train_args])
        config = dataclasses.replace(config_from_args_of(given, cfg), **overrides)
        restore_portable(previous, run_dir, config)
        resume = True
    else:
        p = argparse.ArgumentParser()
        add_train_arguments(p)
        given = p.parse_args(
            [
                "--out",
                str(run_dir),
                "--task",
                args.task,
                "--data",
                str(pack_dir / "train"),
                *GPU_DEFAULTS,
                *train_args,
            ]
        )
        config = dataclasses.replace(config_from_args(given), **overrides)
        resume = False
    code = train_mod.train(config, resume=resume)
    portable = write_portable(run_dir, out / f"{args.task}-portable.pt", previous)
    for name in ("log.jsonl", "config.json"):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out / name)
    if portable["best_ema"] is not None:
        gen = generator_from_checkpoint({"generator_kwargs": portable["generator_kwargs"],
                                         "ema": _full(portable["best_ema"])})  # fmt: skip
        diff = export_generator(
            gen,
            out / f"{args.task}.onnx",
            name=f"{args.task}-gpu-step{portable['best']['step']}",
            trained_on=config.trained_on or "InkHue base corpus (docs/TRAINING.md)",
            train_size=config.crop_size,
        )
        print(
            f"exported the best checkpoint (step {portable['best']['step']}, "
            f"{portable['best']['metric']} {portable['best']['value']:.3f}); parity {diff:.2g}"
        )
    shutil.rmtree(work, ignore_errors=True)
    return code


def config_from_args_of(given: argparse.Namespace, saved):
    """The saved config with the run-time options of ``given`` (as --resume allows)."""
    from inkhue_training.options import RESUME_OVERRIDABLE

    changed = {k: v for k, v in vars(given).items() if k in RESUME_OVERRIDABLE}
    return dataclasses.replace(saved, **changed)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack the corpus of one task to travel to the device")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--task", choices=["grayscale", "lineart"], required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--side", type=int, default=160, help="long side, px (default 160)")
    p.add_argument("--quality", type=int, default=70, help="WebP quality (default 70)")
    p.add_argument(
        "--budget-mib",
        type=float,
        default=None,
        help="most the pack may weigh (default: 64 MiB less the repo and a portable checkpoint)",
    )
    p.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="I/N",
        help="only every N-th training image from the I-th (default 0/1: all)",
    )
    r = sub.add_parser("run", help="one training run (on the device machine)")
    r.add_argument("--task", choices=["grayscale", "lineart"], required=True)
    r.add_argument("--pack", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--resume-from", type=Path, default=None)
    r.add_argument(
        "--minutes",
        type=float,
        default=8.0,
        help="training time; export and transfer need the rest of 10 (default 8)",
    )
    args = ap.parse_args(argv)
    from inkhue_engine.errors import InkHueError

    try:
        if args.cmd == "pack":
            budget = default_budget_mib() if args.budget_mib is None else args.budget_mib
            return pack(
                args.corpus, args.task, args.out, args.side, args.quality, budget, args.shard
            )
        return run(args, extra)
    except InkHueError as exc:
        print(f"gpu_train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
