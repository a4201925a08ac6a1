"""Synthetic animated shots for developing keyframe matching (docs/KEYFRAMES.md).

    python benchmarks/synthetic_shots.py --out /work/data/synthetic_shots [--shots 6]
        [--frames 24] [--seed 0]

Each shot is a procedural cartoon: a flat background with large scenery shapes and 4-7
outlined characters (ellipses, rounded boxes, polygons with an inner detail) in random
flat colors, which move along smooth paths, turn a little, grow or shrink, pass over one
another (occlusion) and enter or leave the frame; the whole picture sways with a slow
camera move. Written like the prologue_kid renders: ``color/`` (truth), ``gray/`` (the
frames' own L), ``lineart/`` (the outlines, black on white, anti-aliased), frames
``0000.png`` ... Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from inkhue_engine import frames_io as fio
from inkhue_engine.color import from_float01, rgb_to_gray01, to_float01

SIZE = (360, 480)  # h, w
LINE = 3  # outline width (px)


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 230), rng.integers(90, 250)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _shape(rng: np.random.Generator) -> dict:
    kind = rng.choice(["ellipse", "box", "poly"])
    r = float(rng.uniform(18, 48))
    n = int(rng.integers(5, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.6, 1.0, n)
    return {
        "kind": kind,
        "r": r,
        "aspect": float(rng.uniform(0.5, 1.0)),
        "poly": np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1),
        "fill": _color(rng),
        "detail": _color(rng),
        "has_detail": bool(rng.random() < 0.6),
        "start": rng.uniform([40, 40], [SIZE[1] - 40, SIZE[0] - 40]),
        "velocity": rng.uniform(-4.5, 4.5, 2),
        "wobble": rng.uniform(0, 6),
        "spin": float(rng.uniform(-2.5, 2.5)),
        "grow": float(rng.uniform(-0.006, 0.006)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
    }


def _points(s: dict, t: int, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outline polygon and inner-detail polygon of shape ``s`` at frame ``t`` (float px)."""
    centre = (
        s["start"]
        + s["velocity"] * t
        + s["wobble"] * np.array([np.sin(0.3 * t + s["phase"]), np.cos(0.2 * t + s["phase"])])
        + cam
    )
    scale = s["r"] * (1 + s["grow"] * t)
    a = np.deg2rad(s["spin"] * t)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    if s["kind"] == "ellipse":
        u = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        base = np.stack([np.cos(u), s["aspect"] * np.sin(u)], 1)
    elif s["kind"] == "box":
        base = np.array(
            [[-1, -s["aspect"]], [1, -s["aspect"]], [1, s["aspect"]], [-1, s["aspect"]]], float
        )
    else:
        base = s["poly"]
    outer = centre + (base * scale) @ rot.T
    inner = centre + (base * scale * 0.45 + np.array([0.2, -0.15]) * scale) @ rot.T
    return outer, inner


def render_shot(rng: np.random.Generator, frames: int) -> list[dict[str, np.ndarray]]:
    """The frames of one shot: dicts with 'color' (RGB uint8), 'gray', 'lineart'."""
    bg = _color(rng)
    scenery = [
        (rng.uniform([0, 0], [SIZE[1], SIZE[0]]), float(rng.uniform(60, 140)), _color(rng))
        for _ in range(2)
    ]
    shapes = [_shape(rng) for _ in range(int(rng.integers(4, 8)))]
    out = []
    for t in range(frames):
        cam = np.array([6 * np.sin(0.15 * t), 4 * np.sin(0.11 * t)])
        color = np.empty((*SIZE, 3), np.uint8)
        color[:] = bg
        lines = np.full(SIZE, 255, np.uint8)
        for centre, r, col in scenery:
            c = tuple(int(v) for v in np.rint((centre + cam) * 16))
            cv2.circle(color, c, int(r * 16), col, -1, cv2.LINE_AA, 4)
            cv2.circle(color, c, int(r * 16), (0, 0, 0), LINE, cv2.LINE_AA, 4)
            cv2.circle(lines, c, int(r * 16), 0, LINE, cv2.LINE_AA, 4)
        for s in shapes:  # later shapes pass over earlier ones
            outer, inner = _points(s, t, cam)
            polys = [np.rint(outer * 16).astype(np.int32)]
            cv2.fillPoly(color, polys, s["fill"], cv2.LINE_AA, 4)
            cv2.polylines(color, polys, True, (0, 0, 0), LINE, cv2.LINE_AA, 4)
            # the line art is what the artist drew: hidden outlines are erased too
            cv2.fillPoly(lines, polys, 255, cv2.LINE_AA, 4)
            cv2.polylines(lines, polys, True, 0, LINE, cv2.LINE_AA, 4)
            if s["has_detail"]:
                ip = [np.rint(inner * 16).astype(np.int32)]
                cv2.fillPoly(color, ip, s["detail"], cv2.LINE_AA, 4)
                cv2.polylines(color, ip, True, (0, 0, 0), 2, cv2.LINE_AA, 4)
                cv2.polylines(lines, ip, True, 0, 2, cv2.LINE_AA, 4)
        gray = from_float01(rgb_to_gray01(to_float01(color)), np.uint8)
        out.append({"color": color, "gray": gray, "lineart": lines})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shots", type=int, default=6)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for k in range(args.shots):
        shot = args.out / f"shot{k:02d}"
        for t, frame in enumerate(render_shot(rng, args.frames)):
            for kind, img in frame.items():
                (shot / kind).mkdir(parents=True, exist_ok=True)
                fio.write_image_atomic(shot / kind / f"{t:04d}.png", img)
    print(f"{args.shots} shots of {args.frames} frames -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
