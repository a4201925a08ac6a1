"""``inkhue train``, ``inkhue export`` and ``inkhue finetune``: registered into the engine's CLI.

torch is imported inside the commands only, so that ``inkhue --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from inkhue_engine.errors import InkHueError, InputError
from inkhue_engine.finetune_spec import TRAIN_EXTRA, TRAIN_PACKAGES
from inkhue_training.options import add_train_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``export`` and ``finetune`` subcommands."""
    p = subparsers.add_parser(
        "train",
        help="train a colorization GAN on folders of colored images",
        description="Train (or --resume) a generator + discriminator; the run folder gets "
        "config.json, checkpoints (last.pt), log.jsonl and samples/. Under torchrun, "
        "use 'python -m inkhue_training.train' with the same flags.",
    )
    add_train_arguments(p)
    p.set_defaults(func=_train)

    p = subparsers.add_parser(
        "export",
        help="export a training checkpoint to an ONNX model for the engine",
        description="Export the EMA generator of a checkpoint (or of a run folder's best.pt, "
        "the checkpoint with the best validation score, else its last.pt) to "
        "one ONNX file with the inkhue.* metadata, and check it against PyTorch in ONNX "
        "Runtime (the max abs difference is printed; above --tolerance it fails).",
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        help="checkpoint .pt, or a run folder (its best.pt, else its last.pt)",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--name", help="model name (default: the run folder's name)")
    p.add_argument("--trained-on", help="what it was trained on (default: from the run)")
    p.add_argument(
        "--palette",
        help="a palette stored in the model: comma-separated '#rrggbb' or a JSON list file",
    )
    p.add_argument(
        "--temperature",
        type=float,
        help="annealed-mean temperature of a classification head (default: the one it was "
        "trained with, 0.38; lower is more vivid, 1 is the plain mean)",
    )
    p.add_argument("--raw", action="store_true", help="export the raw weights, not the EMA")
    p.add_argument("--tolerance", type=float, default=1e-3, help="parity limit (default 1e-3)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    p.set_defaults(func=_export)

    from inkhue_training import finetune  # torch-free at import, like this module

    finetune.register(subparsers)


def _need_training_extra(command: str) -> None:
    """A one-line error instead of a traceback when torch & co. are not installed: this
    package is in every install of inkhue (setup.cfg), the training extra is not."""
    missing = [p for p in TRAIN_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise InkHueError(
            f"'inkhue {command}' needs the training extra (missing: {', '.join(missing)}): "
            f"{TRAIN_EXTRA}"
        )


def _train(args: argparse.Namespace) -> int:
    _need_training_extra("train")
    from inkhue_training.options import config_from_args
    from inkhue_training.train import train

    return train(config_from_args(args), resume=args.resume)


def _palette(value: str | None) -> list[str] | None:
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        try:
            colors = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a JSON list of '#rrggbb' colors ({exc})") from exc
        if not isinstance(colors, list):
            raise InputError(f"{path}: not a JSON list of '#rrggbb' colors")
        return [str(c) for c in colors]
    return [c.strip() for c in value.split(",") if c.strip()]


def _export(args: argparse.Namespace) -> int:
    _need_training_extra("export")
    from inkhue_training.export import export_checkpoint

    ckpt = args.checkpoint
    if ckpt.is_dir():  # ship the checkpoint chosen by the dev metric, not the last step
        ckpt = ckpt / "best.pt" if (ckpt / "best.pt").is_file() else ckpt / "last.pt"
        print(f"exporting {ckpt}")
    if args.output.exists() and args.output.resolve() == ckpt.resolve():
        raise InputError(f"{args.output}: would overwrite the checkpoint; choose another -o")
    diff = export_checkpoint(
        ckpt,
        args.output,
        name=args.name,
        trained_on=args.trained_on,
        palette=_palette(args.palette),
        use_ema=not args.raw,
        temperature=args.temperature,
        check=not args.no_check,
        tolerance=args.tolerance,
    )
    if args.no_check:
        print(f"wrote {args.output} (parity not checked)")
    else:
        print(
            f"wrote {args.output}; ONNX Runtime vs PyTorch max abs diff {diff:.3g} "
            f"(tolerance {args.tolerance:g})"
        )
    return 0
