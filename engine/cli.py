"""The ``inkhue`` command line: one parser, subcommands registered by their modules.

Each command module exposes ``register(subparsers)`` that adds its parser and sets
``func`` (called with the parsed namespace; returns an exit code). Command modules
import heavy libraries inside ``func`` so that ``inkhue --help`` stays fast.
Training commands live in ``inkhue_training`` (torch); they are listed only when
that package imports, and a clear error says how to install it otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from inkhue_engine import __version__
from inkhue_engine.errors import InkHueError

#: Engine command modules (no torch). Each has ``register(subparsers)``.
ENGINE_COMMANDS = [
    "inkhue_engine.commands.colorize",
    "inkhue_engine.commands.info",
    "inkhue_engine.commands.evaluate",
    "inkhue_engine.commands.serve",
    "inkhue_engine.commands.bench",
]
#: Training command modules; they import torch only inside their ``func``.
TRAINING_COMMANDS = ["inkhue_training.commands"]
TRAINING_NAMES = ["train", "export", "finetune"]


def _missing_training(args: argparse.Namespace) -> int:
    raise InkHueError(
        f"'inkhue {args.command}' needs the training extra: pip install 'inkhue[train]'"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inkhue", description="Colorize line art and grayscale animation frames."
    )
    parser.add_argument("--version", action="version", version=f"inkhue {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in ENGINE_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module: show it
                raise
            continue  # command not written yet
        module.register(sub)
    registered = False
    for name in TRAINING_COMMANDS:
        try:
            importlib.import_module(name).register(sub)
            registered = True
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("inkhue_training"):
                raise
    if not registered:
        for cmd in TRAINING_NAMES:
            p = sub.add_parser(cmd, help=f"{cmd} (needs the 'train' extra)")
            p.set_defaults(func=_missing_training)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``inkhue`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except InkHueError as exc:
        print(f"inkhue: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inkhue: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
