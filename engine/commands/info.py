"""``inkhue info``: versions, ONNX Runtime, the provider that really runs, models found."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` command."""
    p = subparsers.add_parser(
        "info",
        help="show versions, devices and models",
        description="Show the InkHue and ONNX Runtime versions, the execution provider that "
        "really runs on the chosen device (by loading a model), and the models found.",
    )
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="model name or .onnx file to load (default: the bundled grayscale model)",
    )
    p.add_argument(
        "--device",
        "-d",
        default="auto",
        choices=["auto", "cpu", "cuda", "tensorrt", "directml", "coreml"],
        help="device to try (default: auto)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the report. Fails (InkHueError) when ONNX Runtime is missing or the
    chosen device / model cannot be used."""
    from inkhue_engine import __version__
    from inkhue_engine.errors import ModelError
    from inkhue_engine.model import (
        available_providers,
        bundled_models_dir,
        list_models,
        load_model,
        ort_package,
        resolve_model,
        user_models_dir,
    )

    pkg, ver = ort_package()
    print(f"inkhue {__version__}")
    print(f"ONNX Runtime: {pkg} {ver}")
    print(f"providers in this build: {', '.join(available_providers())}")
    models = list_models()
    try:
        path = resolve_model(args.model)
    except ModelError as exc:
        if args.model is not None:
            raise
        path = None
        print(f"device {args.device}: not checked ({exc})")
    if path is not None:
        model = load_model(path, args.device)
        print(
            f"device {args.device}: runs on {', '.join(model.providers)} "
            f"(model {model.info.name!r}, {path})"
        )
    print(f"bundled models: {bundled_models_dir()}")
    print(f"user models:    {user_models_dir()}")
    if not models:
        print("models: none found")
    else:
        print("models:")
        for m in models:
            where = "bundled" if m.builtin else str(m.path.parent)
            print(f"  {m.name:<20} {m.task:<9} trained on {m.trained_on}  [{m.path.name}, {where}]")
    return 0
