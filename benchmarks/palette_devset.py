"""Build the small dev sets on which the palette lock is measured (not a test).

    python benchmarks/palette_devset.py --extracted DIR --frames DIR --out DIR [--per-package 40]

``--extracted``: a folder with one sub-folder per Debian package, each made by
``apt-get download PKG && dpkg-deb -x PKG_*.deb DIR/PKG`` (hedgewars-data, supertux-data,
tuxpaint-stamps-default). Only files the corpus recipe keeps AND puts in its dev split
(``inkhue_training.corpus.select_files`` / ``split_of``) are used, so no training image is
scored. ``--frames``: rendered prologue_kid frames (synfig-examples, GPL-2+; see docs/DATA.md).

Writes per set ``OUT/<set>/truth/*.png`` (RGB on white, long side 256, the corpus filters)
and ``OUT/<set>/palette.gpl``: the set's own palette (``extract_palette`` over its truth
images, fills + paper + ink), i.e. the studio palette a palette lock is used with. Then::

    inkhue evaluate --task grayscale --data OUT/<set>/truth --palette OUT/<set>/palette.gpl
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine.palette import extract_palette
from inkhue_training import corpus

PACKAGES = ("hedgewars-data", "supertux-data", "tuxpaint-stamps-default")


def dev_images(root: Path, package: str, limit: int, params: corpus.Params) -> list[np.ndarray]:
    """Up to ``limit`` corpus-kept dev-split images of one extracted package, RGB uint8."""
    sel = corpus.select_files(package, corpus.list_images(root))
    out = []
    for rel, (_content, why) in sorted(sel.items()):
        split = corpus.split_of(corpus.split_key(package, rel), params.dev_fraction)
        if why is not None or split != "dev":
            continue
        try:
            rgb = corpus.load_image(root / rel, params.size, params.min_side)
        except corpus.InputError:
            continue
        h, w = corpus.target_shape(*rgb.shape[:2], params.size, params.min_side)
        rgb = (
            cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            if (h, w) != rgb.shape[:2]
            else rgb
        )
        if corpus.size_drop_reason(
            h, w, params.min_side, params.max_aspect
        ) or corpus.content_drop_reason(rgb, params.min_nonwhite, params.min_chroma):
            continue
        out.append(rgb)
        if len(out) >= limit:
            break
    return out


def write_set(folder: Path, images: list[np.ndarray], names: list[str], colors: int) -> None:
    """Truth PNGs and the set's palette (.gpl)."""
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    for img, name in zip(images, names, strict=True):
        corpus.write_png_atomic(folder / "truth" / f"{name}.png", img)
    pal = extract_palette(images, max_colors=colors, neutrals=True)
    lines = ["GIMP Palette", f"Name: {folder.name}", "#"]
    lines += [f"{int(c[1:3], 16)} {int(c[3:5], 16)} {int(c[5:7], 16)} {c}" for c in pal]
    (folder / "palette.gpl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{folder.name}: {len(images)} images, {len(pal)} palette colors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extracted", type=Path, required=True)
    ap.add_argument("--frames", type=Path, required=True, help="prologue_kid frames (PNG)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--per-package", type=int, default=40)
    ap.add_argument("--frame-step", type=int, default=8)
    ap.add_argument("--colors", type=int, default=24, help="fill colors per set palette")
    args = ap.parse_args()
    params = corpus.Params()
    for pkg in PACKAGES:
        imgs = dev_images(args.extracted / pkg, pkg, args.per_package, params)
        write_set(args.out / pkg, imgs, [f"{pkg}_{i:03d}" for i in range(len(imgs))], args.colors)
    files = sorted(args.frames.glob("*.png"))[:: args.frame_step]
    frames = [
        corpus.composite_on_white(
            cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        )
        for f in files
    ]
    write_set(args.out / "prologue_kid", frames, [f.stem for f in files], args.colors)


if __name__ == "__main__":
    main()
