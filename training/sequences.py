"""Render real 2D animation sequences for development and flicker measurements.

    python -m inkhue_training.sequences prologue --out /work/data/prologue_kid \
        [--width 576 --height 1008] [--threads 2]

``prologue`` renders Synfig's ``prologue_kid`` example (Debian packages ``synfig`` and
``synfig-examples``; GPL-2+), an outlined anime boy in a 121-frame idle loop, where only about
5% of the pixels ever change: the right sequence to measure flicker on static areas
(docs/FACTS.md, "Training data").

Output folder::

    color/0000.png ...    the rendered frames, RGB (alpha, if any, composited onto white)
    gray/0000.png ...     the same frames in gray, with the frames' own Lab L
    lineart/0000.png ...  the artist's lines: the document rendered with its outline layers
                          only (filled shapes white, so they still hide what they cover)
    lineart_xdog/0000.png ... line art synthesized from each color frame (engine/lineart.py,
                          as training makes it: thicker, with lines at color edges)
    sequence.json         source, size, fps, frame count, render time, share of changing pixels

Re-running renders only the frames that are missing; every file is written atomically.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine.color import from_float01, lab_to_rgb, rgb_to_gray01, to_float01
from inkhue_engine.errors import InkHueError, InputError, ResourceError
from inkhue_engine.lineart import synthesize_lineart
from inkhue_training.corpus import (
    composite_on_white,
    ensure_apt_tool,
    extract_deb,
    fetch_deb,
    write_json_atomic,
    write_png_atomic,
)

PROLOGUE = "prologue_kid"
#: Frames rendered per synfig call: big enough to amortize loading the file, small enough
#: that an interrupted run loses little.
CHUNK = 16
#: A pixel "changes" between frames when a channel moves by more than this (uint8 levels).
CHANGE_LEVEL = 8
_TIME_TOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*([hmsf])")


def parse_synfig_time(text: str, fps: float) -> int:
    """A Synfig time ("5s", "5s 0f", "1m 2s 3f", "120f") -> whole frames at ``fps``."""
    text = text.strip()
    tokens = _TIME_TOKEN.findall(text)
    if not tokens or _TIME_TOKEN.sub("", text).strip():
        raise InputError(f"cannot read the Synfig time {text!r}: expected e.g. '5s 0f'")
    seconds = {"h": 3600.0, "m": 60.0, "s": 1.0}
    frames = 0.0
    for value, unit in tokens:
        frames += float(value) if unit == "f" else float(value) * seconds[unit] * fps
    return int(round(frames))


def read_canvas(sif: Path) -> dict:
    """fps, first and last frame (inclusive) and native size of a .sif / .sifz file."""
    opener = gzip.open if sif.suffix == ".sifz" else open
    try:
        with opener(sif, "rb") as fh:
            for _event, elem in ET.iterparse(fh, events=("start",)):
                attrs = dict(elem.attrib)
                break
            else:
                raise InputError(f"{sif}: no <canvas> element")
    except (OSError, ET.ParseError) as exc:
        raise InputError(f"{sif}: not a readable Synfig file ({exc})") from exc
    fps = float(attrs.get("fps", "24"))
    return {
        "fps": fps,
        "begin": parse_synfig_time(attrs.get("begin-time", "0f"), fps),
        "end": parse_synfig_time(attrs.get("end-time", "0f"), fps),
        "width": int(attrs.get("width", 0)),
        "height": int(attrs.get("height", 0)),
    }


def find_example(name: str, work: Path) -> Path:
    """Path of Synfig example ``name`` (.sif or .sifz): from the installed synfig-examples,
    else from its .deb downloaded and unpacked into ``work``."""
    proc = subprocess.run(
        ["dpkg", "-L", "synfig-examples"], capture_output=True, text=True, check=False
    )
    listed = proc.stdout.splitlines() if proc.returncode == 0 else []
    for line in listed:
        if Path(line).name in (f"{name}.sif", f"{name}.sifz") and Path(line).is_file():
            return Path(line)
    work.mkdir(parents=True, exist_ok=True)
    dest = work / "extract" / "synfig-examples"
    extract_deb(fetch_deb("synfig-examples", work), dest)
    for ext in (".sif", ".sifz"):
        hits = sorted(dest.rglob(f"{name}{ext}"))
        if hits:
            return hits[0]
    raise ResourceError(f"synfig-examples has no {name}.sif or {name}.sifz")


def render_range(
    sif: Path, first: int, last: int, width: int, height: int, threads: int, tmp: Path
) -> list[Path]:
    """Render frames ``first..last`` (inclusive) as PNG into ``tmp``; returns them in order."""
    for old in tmp.glob("*.png"):
        old.unlink()
    # frame numbers must be written "23f": a bare number is read as a time, not a frame
    # (docs/FACTS.md, "Training data")
    cmd = [
        "synfig",
        "-q",
        "-T",
        str(threads),
        str(sif),
        "-t",
        "png",
        "-o",
        str(tmp / "f.png"),
        "-w",
        str(width),
        "-h",
        str(height),
        "--begin-time",
        f"{first}f",
        "--end-time",
        f"{last}f",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    files = sorted(tmp.glob("f.*.png"), key=lambda p: int(p.name.split(".")[1]))
    if first == last and not files and (tmp / "f.png").exists():
        files = [tmp / "f.png"]  # synfig writes a lone frame without a number
    if proc.returncode != 0 or len(files) != last - first + 1:
        msg = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
        raise ResourceError(
            f"synfig rendered {len(files)} of frames {first}f..{last}f of {sif} "
            f"(exit {proc.returncode}): {msg[-1] if msg else 'no error message'}"
        )
    return files


def _chunks(frames: list[int], size: int) -> list[tuple[int, int]]:
    """Consecutive runs of ``frames`` (sorted), each at most ``size`` long, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1 and f - runs[-1][0] < size:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return runs


#: Synfig layers that draw the artist's lines (kept as they are in the line-art render).
LINE_LAYERS = frozenset({"outline", "advanced_outline"})
#: Filled shapes: drawn white in the line-art render, so they still hide the lines they
#: cover in the color render (occlusion), but leave no color.
SHAPE_LAYERS = frozenset({"region", "polygon", "rectangle", "circle", "star", "SolidColor"})
#: Layers that only group, move or distort what is below them: kept, so the lines land
#: where they do in the color render.
PASS_LAYERS = frozenset(
    {
        "PasteCanvas",
        "group",
        "switch",
        "filter_group",
        "super_sample",
        "blur",
        "noise_distort",
        "stretch",
        "translate",
        "rotate",
        "zoom",
        "warp",
        "twirl",
        "inside_out",
        "skeleton",
    }
)


def outlines_only(tree: ET.ElementTree) -> ET.ElementTree:
    """A Synfig document that renders only the artist's lines: outline layers as drawn,
    filled shapes in white (they still hide the lines they cover), grouping and
    distortion layers kept, every other layer (gradients, textures, shading, text)
    switched off. Returns ``tree``, changed in place."""
    for layer in tree.iter("layer"):
        kind = layer.get("type")
        if kind in LINE_LAYERS or kind in PASS_LAYERS:
            continue
        if kind not in SHAPE_LAYERS:
            layer.set("active", "false")
            continue
        for param in layer.findall("param"):
            if param.get("name") != "color":
                continue
            alpha = "1.0"
            old = param.find("color")
            if old is not None and old.find("a") is not None:
                alpha = old.find("a").text or "1.0"
            for child in list(param):
                param.remove(child)
            param.attrib.pop("use", None)
            white = ET.SubElement(param, "color")
            for channel, value in (("r", "1.0"), ("g", "1.0"), ("b", "1.0"), ("a", alpha)):
                ET.SubElement(white, channel).text = value
    return tree


def write_outlines_sif(sif: Path, dest: Path) -> Path:
    """``outlines_only`` of ``sif`` (plain or gzipped .sifz) written to ``dest``; the
    render runs with ``dest`` beside nothing else, so the file must not import other
    files (prologue_kid imports none)."""
    data = sif.read_bytes()
    if sif.suffix == ".sifz":
        data = gzip.decompress(data)
    tree = ET.ElementTree(ET.fromstring(data))
    outlines_only(tree)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tree.write(dest, encoding="UTF-8", xml_declaration=True)
    return dest


def derived_frames(rgb: np.ndarray, lineart_fn=None) -> dict[str, np.ndarray]:
    """The gray (same Lab L) and, given ``lineart_fn``, the line-art copy of an RGB uint8 frame,
    both as uint8 gray images."""
    rgb01 = to_float01(rgb)
    out = {"gray": from_float01(rgb_to_gray01(rgb01), np.uint8)}
    if lineart_fn is not None:
        L = lineart_fn(rgb01)
        lab = np.stack([L, np.zeros_like(L), np.zeros_like(L)], axis=-1)
        out["lineart"] = from_float01(lab_to_rgb(lab)[..., 0], np.uint8)
    return out


def _read_render(png: Path) -> np.ndarray:
    """A frame synfig wrote, as RGB uint8 composited onto white."""
    raw = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ResourceError(f"synfig wrote an unreadable frame {png}")
    code = cv2.COLOR_BGRA2RGBA if raw.ndim == 3 and raw.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return composite_on_white(cv2.cvtColor(raw, code))


def render_prologue(
    out: Path,
    width: int = 576,
    height: int = 1008,
    threads: int = 2,
    work: Path | None = None,
    progress: bool = True,
) -> dict:
    """Render prologue_kid into ``out`` (see the module doc); returns sequence.json's content."""
    ensure_apt_tool("synfig", "synfig")
    sif = find_example(PROLOGUE, work or out / ".work")
    canvas = read_canvas(sif)
    frames = list(range(canvas["begin"], canvas["end"] + 1))
    kinds = ["color", "gray", "lineart", "lineart_xdog"]
    from_color = ["color", "gray", "lineart_xdog"]  # rendered in color, then derived
    for kind in kinds:
        (out / kind).mkdir(parents=True, exist_ok=True)
    info_file = out / "sequence.json"
    if info_file.exists():
        old = json.loads(info_file.read_text(encoding="utf-8"))
        if (old.get("width"), old.get("height")) != (width, height):
            raise InputError(
                f"{out} holds frames of {old.get('width')}x{old.get('height')}: "
                "use another --out or delete it"
            )

    def name(f: int) -> str:
        return f"{f:04d}.png"

    def missing(kinds_: list[str]) -> list[int]:
        return [f for f in frames if not all((out / k / name(f)).exists() for k in kinds_)]

    todo_color, todo_lines = missing(from_color), missing(["lineart"])
    t0 = time.perf_counter()
    rendered = len(set(todo_color) | set(todo_lines))
    from tqdm import tqdm

    bar = tqdm(
        total=len(todo_color) + len(todo_lines),
        desc=PROLOGUE,
        unit="frame",
        disable=not progress,
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(dir=out, prefix=".render-") as tmpdir:
        tmp = Path(tmpdir)
        # the line art is the artist's own lines: the document rendered with its
        # outline layers only (the color frames' lines, pixel for pixel)
        lines_sif = write_outlines_sif(sif, tmp / "outlines.sif") if todo_lines else None
        for kind_sif, todo in ((sif, todo_color), (lines_sif, todo_lines)):
            for first, last in _chunks(todo, CHUNK):
                files = render_range(kind_sif, first, last, width, height, threads, tmp)
                for f, png in zip(range(first, last + 1), files, strict=True):
                    rgb = _read_render(png)
                    if kind_sif is sif:
                        write_png_atomic(out / "color" / name(f), rgb)
                        derived = derived_frames(rgb, synthesize_lineart)
                        write_png_atomic(out / "gray" / name(f), derived["gray"])
                        write_png_atomic(out / "lineart_xdog" / name(f), derived["lineart"])
                    else:
                        gray = derived_frames(rgb)["gray"]
                        write_png_atomic(out / "lineart" / name(f), gray)
                    bar.update()
    bar.close()
    seconds = time.perf_counter() - t0

    # share of pixels that ever change over the loop (docs/FACTS.md: about 5%), and between
    # consecutive frames; a change is > CHANGE_LEVEL in a channel, so that antialiasing
    # jitter of the renderer does not count
    prev = first = cv2.imread(str(out / "color" / name(frames[0]))).astype(np.int16)
    changed = np.zeros(first.shape[:2], bool)
    consecutive = []
    for f in frames[1:]:
        cur = cv2.imread(str(out / "color" / name(f))).astype(np.int16)
        changed |= (np.abs(cur - first) > CHANGE_LEVEL).any(axis=2)
        consecutive.append(float((np.abs(cur - prev) > CHANGE_LEVEL).any(axis=2).mean()))
        prev = cur
    proc = subprocess.run(["synfig", "--version"], capture_output=True, text=True, check=False)
    synfig_version = (proc.stdout + proc.stderr).strip().splitlines()
    info = {
        "source": str(sif),
        "package": "synfig-examples (GPL-2+)",
        "renderer": synfig_version[0] if synfig_version else "synfig",
        "width": width,
        "height": height,
        "fps": canvas["fps"],
        "frames": len(frames),
        "first_frame": frames[0],
        "kinds": kinds,
        "rendered_now": rendered,
        "render_seconds": round(seconds, 1),
        "change_level": CHANGE_LEVEL,
        "changed_pixel_fraction": round(float(changed.mean()), 4),
        "consecutive_changed_fraction": round(float(np.mean(consecutive or [0.0])), 5),
    }
    write_json_atomic(info_file, info)
    return info


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    ap = argparse.ArgumentParser(
        prog="python -m inkhue_training.sequences",
        description="Render development animation sequences.",
    )
    sub = ap.add_subparsers(dest="sequence", required=True)
    p = sub.add_parser("prologue", help="Synfig's prologue_kid: 121 frames of an outlined boy")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--width", type=int, default=576)
    p.add_argument("--height", type=int, default=1008)
    p.add_argument("--threads", type=int, default=2, help="synfig render threads")
    p.add_argument(
        "--work",
        type=Path,
        default=None,
        help="where to unpack synfig-examples when it is not installed",
    )
    p.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        info = render_prologue(
            args.out,
            args.width,
            args.height,
            args.threads,
            args.work,
            progress=not args.no_progress,
        )
    except InkHueError as exc:
        print(f"inkhue-sequences: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{info['frames']} frames of {info['width']}x{info['height']} in {args.out} "
        f"({info['rendered_now']} rendered now in {info['render_seconds']} s; "
        f"{info['changed_pixel_fraction']:.1%} of pixels ever change; kinds: {info['kinds']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
