"""``inkhue serve``: the local HTTP service the Krita plugin talks to (docs/HTTP_API.md)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from inkhue_engine.errors import InputError

MiB = 1024 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="run the local HTTP service used by the Krita plugin",
        description="Serve the colorizer over HTTP (API: docs/HTTP_API.md, OpenAPI at "
        "/openapi.json). Binds to 127.0.0.1 unless told otherwise; any other address "
        "needs a token.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    p.add_argument(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' on every request (default: the "
        "INKHUE_TOKEN environment variable; prefer it, a command line is visible to "
        "other users of the machine)",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="folder that POST /jobs/files may read and write (default: none, no "
        "server-side file access)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto | cpu | cuda | tensorrt | directml | coreml (default: auto)",
    )
    p.add_argument(
        "--models-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of .onnx models (repeatable); the user models folder and the "
        "bundled models are always listed",
    )
    p.add_argument(
        "--max-body-mb", type=int, default=512, help="largest request body in MiB (default: 512)"
    )
    p.add_argument(
        "--job-memory-mb",
        type=int,
        default=4096,
        help="memory all batch jobs together may hold, in MiB (default: 4096)",
    )
    p.add_argument(
        "--inference-slots",
        type=int,
        default=0,
        help="inferences run at the same time (default 0: one per usable core, up to 4, so "
        "one long frame does not hold up the rest)",
    )
    p.add_argument(
        "--no-preload",
        action="store_true",
        help="do not load the default models at startup",
    )
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """ServerConfig from parsed arguments (token from INKHUE_TOKEN when --token is absent)."""
    from inkhue_engine.server import ServerConfig

    token = args.token if args.token is not None else os.environ.get("INKHUE_TOKEN") or None
    root = None
    if args.root is not None:
        root = args.root.expanduser().resolve()
        if not root.is_dir():
            raise InputError(f"--root {args.root}: not a folder")
    for d in args.models_dir:
        if not d.is_dir():
            raise InputError(f"--models-dir {d}: not a folder")
    for name in ("port", "max_body_mb", "job_memory_mb", "inference_slots"):
        if getattr(args, name) < (0 if name in ("port", "inference_slots") else 1):
            raise InputError(f"--{name.replace('_', '-')}: {getattr(args, name)} is too small")
    return ServerConfig(
        host=args.host,
        port=args.port,
        token=token,
        root=root,
        models_dirs=tuple(d.expanduser().resolve() for d in args.models_dir),
        device=args.device,
        max_body_bytes=args.max_body_mb * MiB,
        max_job_bytes=args.job_memory_mb * MiB,
        inference_slots=args.inference_slots,
        preload=not args.no_preload,
    )


def run(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    from inkhue_engine import parent_watch
    from inkhue_engine.server import check_bind, run_server

    config = config_from_args(args)
    check_bind(config.host, config.token)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    if os.environ.get(parent_watch.ENV) == "1":  # started by the Krita plugin: stop with it
        parent_watch.stop_when_stdin_closes()
    run_server(config)
    return 0
