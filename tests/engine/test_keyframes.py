"""Keyframe matching (engine/keyframes.py) and keyframe shots (engine/shot.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine import frames_io, shot
from inkhue_engine import keyframes as kf
from inkhue_engine.color import delta_e_2000, rgb_to_lab, to_float01
from inkhue_engine.errors import InputError, OutputError
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions
from inkhue_engine.regions import regions_of

sys.path.insert(0, str(Path(__file__).parent))
from cartoon_shots import BALL, HAT, PAPER, SHIRT, SKIN, cartoon, gray_of, interior_de, lines_of  # noqa: E402


@pytest.fixture(scope="module")
def models(grayscale_model, lineart_model):
    return {
        "grayscale": load_model(grayscale_model, "cpu"),
        "lineart": load_model(lineart_model, "cpu"),
    }


# --------------------------------------------------------------------------- descriptors
def test_describe_regions_matches_hand_computed_moments(monkeypatch):
    monkeypatch.setattr(kf, "DESCRIBE_STRIDE", 1)  # every pixel: exact moments
    labels = np.zeros((40, 60), np.int32)
    labels[5:15, 10:50] = 1  # 10 x 40 bar: centroid (9.5, 29.5), elongated
    labels[20:36, 20:36] = 2  # 16 x 16 square: round
    L = np.zeros((40, 60), np.float32)
    L[labels == 2] = 70
    t = kf.describe_regions(labels, L)
    assert t.area[1] == 400 and t.area[2] == 256
    assert (t.cy[1], t.cx[1]) == pytest.approx((9.5, 29.5))
    assert (t.cy[2], t.cx[2]) == pytest.approx((27.5, 27.5))
    assert t.mean_l[2] == pytest.approx(70)
    # bar: variances (40^2-1)/12 along x, (10^2-1)/12 along y -> 1 - sqrt(99/1599)
    assert t.elong[1] == pytest.approx(1 - np.sqrt(99 / 1599), abs=1e-6)
    assert t.elong[2] == pytest.approx(0, abs=1e-6)
    monkeypatch.setattr(kf, "DESCRIBE_STRIDE", 2)  # sampled: areas exact, the rest close
    t2 = kf.describe_regions(labels, L)
    assert np.array_equal(t2.area, t.area)
    assert np.abs(t2.cy - t.cy).max() <= 1.0 and np.abs(t2.cx - t.cx).max() <= 1.0
    assert np.allclose(t2.elong, t.elong, atol=0.05)


# --------------------------------------------------------------------------- matching
@pytest.mark.parametrize("task", ["grayscale", "lineart"])
def test_moved_regions_take_their_keyframe_colors(task, models):
    key_rgb = cartoon()
    make_input = gray_of if task == "grayscale" else lines_of
    ref = kf.make_reference(key_rgb, task, make_input(key_rgb))
    truth = cartoon(dx=6, dy=3, ball=-9)
    out, colors = shot.colorize_with_references(make_input(truth), models[task], [ref])
    assert out.shape == (*truth.shape[:2], 3)
    for color in (SKIN, SHIRT, HAT, BALL, PAPER):
        assert interior_de(out, truth, color) < 2.0, color
    assert colors.unmatched_share() == 0.0


def test_region_split_by_an_occluder_shares_the_reference_color(models):
    key_rgb = cartoon()
    ref = kf.make_reference(key_rgb, "lineart", lines_of(key_rgb))
    truth = cartoon()
    cv2.line(truth, (38, 60), (82, 60), (0, 0, 0), 2)  # a stick cuts the shirt in two
    out, colors = shot.colorize_with_references(lines_of(truth), models["lineart"], [ref])
    labels = colors.labels
    shirt_labels = np.unique(labels[np.all(truth == np.array(SHIRT, np.uint8), axis=-1)])
    assert len(shirt_labels[shirt_labels > 0]) == 2  # the split really made two regions
    assert interior_de(out, truth, SHIRT) < 2.0


def test_a_region_no_keyframe_has_goes_to_the_model_on_a_crop(models, monkeypatch):
    key_rgb = cartoon()
    ref = kf.make_reference(key_rgb, "grayscale", gray_of(key_rgb))
    truth = cartoon(new_star=True)
    calls = []
    from inkhue_engine import pipeline

    real = pipeline.colorize_frame

    def spy(frame, model, hints=None, options=None):
        calls.append(frame.shape)
        return real(frame, model, hints, options)

    monkeypatch.setattr(pipeline, "colorize_frame", spy)
    out, colors = shot.colorize_with_references(gray_of(truth), models["grayscale"], [ref])
    assert colors.unmatched_share() > 0
    assert len(calls) == 1 and calls[0][0] * calls[0][1] < truth.shape[0] * truth.shape[1]
    # the matched regions keep the artist's colors even though the model ran
    for color in (SKIN, SHIRT, HAT, BALL):
        assert interior_de(out, truth, color) < 2.0, color


def test_the_keyframe_wins_over_a_wrong_previous_frame(models):
    key_rgb = cartoon()
    key = kf.make_reference(key_rgb, "lineart", lines_of(key_rgb))
    wrong = key_rgb.copy()
    wrong[np.all(key_rgb == np.array(SHIRT, np.uint8), axis=-1)] = (250, 0, 250)
    prev = kf.make_reference(wrong, "lineart", lines_of(key_rgb), kind="previous")
    truth = cartoon(dx=2)
    out, _ = shot.colorize_with_references(lines_of(truth), models["lineart"], [key, prev])
    assert interior_de(out, truth, SHIRT) < 2.0


def test_previous_frame_carries_colors_the_keyframe_cannot_place(models):
    # the ball is far from where the keyframe has it; the previous frame has it nearby
    key_rgb = cartoon()
    key = kf.make_reference(key_rgb, "grayscale", gray_of(key_rgb))
    before = cartoon(ball=24)
    prev = kf.make_reference(before, "grayscale", gray_of(before), kind="previous")
    truth = cartoon(ball=26)
    out, colors = shot.colorize_with_references(gray_of(truth), models["grayscale"], [key, prev])
    assert interior_de(out, truth, BALL) < 2.0
    ball = colors.labels[80, 146]
    assert colors.source[ball] == 1  # from the previous frame
    assert colors.source[colors.labels[60, 60]] == 0  # the shirt: from the keyframe (tie)


# --------------------------------------------------------------------------- bad keyframes
def test_uncolored_keyframe_is_refused_with_its_name():
    with pytest.raises(InputError, match="key.png: the keyframe has no color"):
        kf.make_reference(gray_of(cartoon()), "grayscale", name="key.png")


def test_keyframe_of_other_framing_is_refused_and_other_scale_is_fitted():
    key = cartoon()
    with pytest.raises(
        InputError,
        match="k.png: the keyframe is 160x120 but the frames are "
        "100x100 \\(another aspect ratio\\)",
    ):
        kf.fit_to_frame(key, (100, 100), "k.png")
    big = cv2.resize(key, (320, 240), interpolation=cv2.INTER_NEAREST)
    assert kf.fit_to_frame(big, (120, 160), "k.png").shape == key.shape


def test_keyframe_of_the_other_task_is_refused():
    colored = cartoon()
    flat_lines = np.where(lines_of(colored)[..., None] == 0, 0, 255).astype(np.uint8)
    flat_lines = np.repeat(flat_lines, 3, axis=2)
    flat_lines[lines_of(colored) > 0] = (255, 0, 0)  # colored, but not the gray frame's L
    with pytest.raises(InputError, match="k.png: its lightness differs"):
        kf.check_keyframe_fits(flat_lines, gray_of(colored), "grayscale", "k.png")
    shaded_no_lines = colored.copy()
    shaded_no_lines[lines_of(colored) == 0] = SKIN  # light: the lines are gone
    with pytest.raises(InputError, match="k.png: only .* of its frame's lines are dark"):
        kf.check_keyframe_fits(shaded_no_lines, lines_of(colored), "lineart", "k.png")
    kf.check_keyframe_fits(colored, gray_of(colored), "grayscale", "k.png")
    kf.check_keyframe_fits(colored, lines_of(colored), "lineart", "k.png")


# --------------------------------------------------------------------------- shots
def write_shot(folder: Path, n: int, task: str) -> list[np.ndarray]:
    folder.mkdir(parents=True)
    truths = []
    for i in range(n):
        rgb = cartoon(dx=2 * i, ball=-3 * i)
        truths.append(rgb)
        frame = gray_of(rgb) if task == "grayscale" else lines_of(rgb)
        frames_io.write_image_atomic(folder / f"f{i:03d}.png", frame)
    return truths


class Stop(Exception):
    """Interrupts a shot (stop_at), as a crash or Ctrl-C would."""


def stop_at(index: int):
    """An on_frame callback that raises Stop once frame ``index`` is written."""

    def on_frame(job) -> None:
        if job.index == index:
            raise Stop

    return on_frame


def test_shot_keyframe_comes_out_unchanged_and_resume_is_byte_identical(tmp_path, models):
    truths = write_shot(tmp_path / "in", 6, "grayscale")
    frames_io.write_image_atomic(tmp_path / "f000.png", truths[0])
    keys = shot.load_keyframes([tmp_path / "f000.png"])
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    full = shot.colorize_shot(sources, tmp_path / "a", models["grayscale"], keys, progress=False)
    assert full.written == 6
    assert np.array_equal(frames_io.read_image(tmp_path / "a" / "f000.png"), truths[0])
    for i in range(1, 6):
        out = frames_io.read_image(tmp_path / "a" / f"f{i:03d}.png")
        assert interior_de(out, truths[i], SHIRT) < 2.0

    with pytest.raises(Stop):
        shot.colorize_shot(
            sources,
            tmp_path / "b",
            models["grayscale"],
            keys,
            progress=False,
            on_frame=stop_at(2),
        )
    assert len(list((tmp_path / "b").glob("*.png"))) == 3
    again = shot.colorize_shot(sources, tmp_path / "b", models["grayscale"], keys, progress=False)
    assert (again.written, again.skipped) == (3, 3)
    for i in range(6):
        name = f"f{i:03d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_shot_with_a_bad_keyframe_writes_nothing(tmp_path, models):
    write_shot(tmp_path / "in", 3, "lineart")
    frames_io.write_image_atomic(tmp_path / "gray.png", gray_of(cartoon()))
    keys = shot.load_keyframes([tmp_path / "gray.png"])
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    with pytest.raises(InputError, match="gray.png: the keyframe has no color"):
        shot.colorize_shot(sources, tmp_path / "out", models["lineart"], keys, progress=False)
    assert not (tmp_path / "out").exists()


def test_shot_never_takes_a_keyframe_file_for_an_output(tmp_path, models):
    # the keyframe folder given as the output folder too: the colored keyframe f000.png
    # must be neither skipped as "already done" nor overwritten
    truths = write_shot(tmp_path / "in", 3, "grayscale")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    frames_io.write_image_atomic(keys_dir / "f000.png", truths[0])
    before = (keys_dir / "f000.png").read_bytes()
    keys = shot.load_keyframes([keys_dir])
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="f000.png: the output would overwrite the input"):
            shot.colorize_shot(
                sources, keys_dir, models["grayscale"], keys, overwrite=overwrite, progress=False
            )
    assert (keys_dir / "f000.png").read_bytes() == before
    assert [p.name for p in keys_dir.iterdir()] == ["f000.png"]


def test_shot_keeps_the_pixel_limit_and_claims_overwritten_outputs_once_written(tmp_path, models):
    truths = write_shot(tmp_path / "in", 4, "grayscale")
    frames_io.write_image_atomic(tmp_path / "f000.png", truths[0])
    h, w = truths[0].shape[:2]
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    with pytest.raises(InputError, match="f000.png: .* is over the limit"):
        shot.load_keyframes([tmp_path / "f000.png"], max_pixels=h * w - 1)
    keys = shot.load_keyframes([tmp_path / "f000.png"])
    with pytest.raises(InputError, match="f00.\\.png: .* is over the limit"):
        shot.colorize_shot(
            sources,
            tmp_path / "x",
            models["grayscale"],
            keys,
            progress=False,
            max_pixels=h * w - 1,
        )
    # every frame is checked, not only the first (a later one may be larger)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    first = frames_io.read_image(tmp_path / "in" / "f000.png")
    frames_io.write_image_atomic(mixed / "f000.png", first)
    frames_io.write_image_atomic(mixed / "f001.png", np.repeat(first, 2, axis=0))
    with pytest.raises(InputError, match="f001.png: .* is over the limit"):
        shot.colorize_shot(
            frames_io.expand_inputs([str(mixed)]), tmp_path / "y", models["grayscale"], keys,
            progress=False, max_pixels=h * w,
        )  # fmt: skip
    out = tmp_path / "out"
    gray = models["grayscale"]
    shot.colorize_shot(sources, out, gray, keys, use_previous=False, progress=False)

    with pytest.raises(Stop):  # redo with other settings, stopped after two frames
        shot.colorize_shot(
            sources, out, gray, keys, overwrite=True, progress=False, on_frame=stop_at(1)
        )
    with pytest.raises(OutputError, match="f002.png: was written with other settings"):
        shot.colorize_shot(sources, out, gray, keys, progress=False)
    shot.colorize_shot(sources, out, gray, keys, overwrite=True, progress=False)
    again = shot.colorize_shot(sources, out, gray, keys, progress=False)
    assert (again.written, again.skipped) == (0, 4)


def test_shot_fill_output_keeps_the_lines_off_the_keyframe_frame_too(tmp_path, models):
    # line art, --output fill (a fill layer under the artist's lines): the keyframe's own
    # frame must not come out with the lines (they would be doubled on that frame only)
    truths = write_shot(tmp_path / "in", 3, "lineart")
    keys = [shot.Keyframe("f000.png", truths[0])]
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    options = ColorizeOptions(output="fill")
    shot.colorize_shot(sources, tmp_path / "o", models["lineart"], keys, options, progress=False)
    for i in range(3):
        out = frames_io.read_image(tmp_path / "o" / f"f{i:03d}.png")
        assert (out.max(axis=2) < 40).sum() == 0, f"frame {i} has lines"
    out0 = frames_io.read_image(tmp_path / "o" / "f000.png")
    assert interior_de(out0, truths[0], SHIRT) < 1.0  # the artist's colors, unchanged


def test_shot_from_a_video_resumes_and_checks_a_keyframe_named_like_its_frame(tmp_path, models):
    truths = [cartoon(dx=2 * i, ball=-3 * i) for i in range(4)]
    clip = tmp_path / "shot.mkv"
    frames_io.write_video(clip, [np.repeat(gray_of(t)[..., None], 3, 2) for t in truths], 24)
    frames_io.write_image_atomic(tmp_path / "sheet.png", truths[0])
    keys = shot.load_keyframes([tmp_path / "sheet.png"])
    src = frames_io.expand_inputs([str(clip)])
    gray = models["grayscale"]

    with pytest.raises(Stop):
        shot.colorize_shot(src, tmp_path / "out", gray, keys, progress=False, on_frame=stop_at(1))
    # the resume reads the last finished video frame as the previous one (not the .mkv)
    again = shot.colorize_shot(src, tmp_path / "out", gray, keys, progress=False)
    assert (again.written, again.skipped) == (2, 2)
    shot.colorize_shot(src, tmp_path / "full", gray, keys, progress=False)
    for i in range(4):
        name = f"frame_{i:05d}.png"
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()
    # a keyframe named like the video's first frame that is another frame's colors
    frames_io.write_image_atomic(tmp_path / "frame_00000.png", cartoon(dx=40, ball=-30))
    wrong = shot.load_keyframes([tmp_path / "frame_00000.png"])
    with pytest.raises(InputError, match="frame_00000.png"):
        shot.colorize_shot(src, tmp_path / "w", gray, wrong, progress=False)
    assert not (tmp_path / "w" / "frame_00000.png").exists()


def test_shot_of_frames_of_two_sizes_refuses_a_keyframe_before_any_output(tmp_path, models):
    truths = write_shot(tmp_path / "in", 3, "grayscale")
    f2 = frames_io.read_image(tmp_path / "in" / "f002.png")
    frames_io.write_image_atomic(tmp_path / "in" / "f002.png", f2[:, 20 : 20 + f2.shape[0]])
    keys = [shot.Keyframe("f000.png", truths[0])]
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    with pytest.raises(InputError, match="aspect ratio"):
        shot.colorize_shot(sources, tmp_path / "o", models["grayscale"], keys, progress=False)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.png"))


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (8, 8), (11, 11)])
def test_shot_of_tiny_frames(tmp_path, models, size):
    h, w = size
    (tmp_path / "in").mkdir()
    for i in range(2):
        frames_io.write_image_atomic(tmp_path / "in" / f"f{i}.png", np.full((h, w), 120, np.uint8))
    keys = [shot.Keyframe("f0.png", np.full((h, w, 3), (200, 60, 40), np.uint8))]
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    res = shot.colorize_shot(sources, tmp_path / "o", models["grayscale"], keys, progress=False)
    assert res.written == 2


def test_cli_reference(tmp_path, grayscale_model, capsys):
    from inkhue_engine.cli import main

    truths = write_shot(tmp_path / "in", 3, "grayscale")
    (tmp_path / "keys").mkdir()
    frames_io.write_image_atomic(tmp_path / "keys" / "f000.png", truths[0])
    rc = main(
        [
            "colorize",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(grayscale_model),
            "--reference",
            str(tmp_path / "keys"),
            "-q",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "f000.png",
        "f001.png",
        "f002.png",
    ]
    capsys.readouterr()
    rc = main(
        [
            "colorize",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "o2"),
            "--model",
            str(grayscale_model),
            "--reference",
            str(tmp_path / "keys"),
            "--hints",
            str(tmp_path / "keys" / "f000.png"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and err == [
        "inkhue: error: --hints and --reference do not combine: paint "
        "the colors into a keyframe instead"
    ]
    assert not (tmp_path / "o2").exists()
    for extra in (["--workers", "2"], ["--batch-size", "8"]):  # not silently ignored
        argv = ["colorize", str(tmp_path / "in"), "-o", str(tmp_path / "o3"), "--model",
                str(grayscale_model), "--reference", str(tmp_path / "keys"), *extra]  # fmt: skip
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "do not apply to --reference" in err[0], err
    assert not (tmp_path / "o3").exists()


def test_regions_of_the_test_cartoon_are_what_the_tests_assume():
    # five fills: paper, shirt, skin, hat, ball (the shapes are closed by their outlines)
    labels = regions_of(
        rgb_to_lab(to_float01(lines_of(cartoon())[..., None].repeat(3, 2)))[..., 0], "lineart"
    )
    assert labels.max() == 5


def test_in_memory_shot_gives_the_same_pixels_as_the_files_runner(tmp_path, models):
    truths = write_shot(tmp_path / "in", 5, "lineart")
    frames_io.write_image_atomic(tmp_path / "f000.png", truths[0])
    sources = frames_io.expand_inputs([str(tmp_path / "in")])
    shot.colorize_shot(
        sources,
        tmp_path / "out",
        models["lineart"],
        shot.load_keyframes([tmp_path / "f000.png"]),
        progress=False,
    )
    frames = [frames_io.read_image(s.path) for s in sources]
    keys = [shot.Keyframe("key", truths[0], frame=0)]
    outs = list(
        shot.colorize_frames(frames, models["lineart"], keys, structure_of=lambda i: frames[i])
    )
    assert len(outs) == 5 and np.array_equal(outs[0], truths[0])
    for i, out in enumerate(outs):
        assert np.array_equal(out, frames_io.read_image(tmp_path / "out" / f"f{i:03d}.png"))


def test_in_memory_shot_refuses_a_bad_keyframe_before_the_first_frame(models):
    frames = iter([lines_of(cartoon()), lines_of(cartoon(dx=2))])
    outs = shot.colorize_frames(
        frames, models["lineart"], [shot.Keyframe("sheet.png", gray_of(cartoon()))]
    )
    with pytest.raises(InputError, match="sheet.png: the keyframe has no color"):
        next(outs)


def _aa_shot(dx: int) -> tuple[np.ndarray, np.ndarray]:
    """An anti-aliased outlined disc and box over a colored ground: (truth RGB, line art)."""
    color = np.empty((96, 128, 3), np.uint8)
    color[:] = (70, 150, 90)
    lines = np.full((96, 128), 255, np.uint8)
    for img, ink in ((color, (0, 0, 0)), (lines, 0)):
        if img is color:
            cv2.circle(
                img, (40 * 16 + dx * 16, 48 * 16), 22 * 16, (230, 120, 40), -1, cv2.LINE_AA, 4
            )
            cv2.rectangle(img, (80, 20), (116, 80), (60, 80, 200), -1, cv2.LINE_AA)
        cv2.circle(img, (40 * 16 + dx * 16, 48 * 16), 22 * 16, ink, 2, cv2.LINE_AA, 4)
        cv2.rectangle(img, (80, 20), (116, 80), ink, 2, cv2.LINE_AA)
    return color, lines


@pytest.mark.parametrize("task", ["grayscale", "lineart"])
def test_line_edges_blend_with_the_fill_on_their_own_side(task, models):
    """The anti-aliased edges of the lines of a moved shape take the color of the fill on
    their own side (not the flow-warped keyframe pixel, which may be the keyframe's line or
    the fill across it)."""
    key, key_lines = _aa_shot(0)
    truth, lines = _aa_shot(5)
    make = (lambda rgb, ln: gray_of(rgb)) if task == "grayscale" else (lambda rgb, ln: ln)
    ref = kf.make_reference(key, task, make(key, key_lines))
    out, _colors = shot.colorize_with_references(make(truth, lines), models[task], [ref])
    edge = cv2.dilate((lines < 250).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    de = delta_e_2000(rgb_to_lab(to_float01(out))[edge], rgb_to_lab(to_float01(truth))[edge])
    # measured: line art 0.11 (0.66 when line pixels took the warped keyframe pixel),
    # grayscale 0.30 (0.31)
    assert float(de.mean()) < (0.3 if task == "lineart" else 0.6)
