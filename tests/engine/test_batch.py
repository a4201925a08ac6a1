"""Batch colorization: resume after a kill, byte-identical results, carry, planning."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inkhue_engine import batch, frames_io, metrics
from inkhue_engine.color import rgb_to_lab, to_float01
from inkhue_engine.errors import InputError, OutputError
from inkhue_engine.model import load_model
from inkhue_engine.pipeline import ColorizeOptions


def make_sequence(folder: Path, n: int = 8, dtype=np.uint8, ext: str = ".png") -> list[Path]:
    """A gray cartoon sequence: static outlined shapes, one disc moving right."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.full((72, 96), 200, np.uint8)
        cv2.rectangle(img, (5, 5), (40, 60), 90, -1)
        cv2.rectangle(img, (5, 5), (40, 60), 20, 2)
        cv2.circle(img, (70, 20), 12, 150, -1)
        cv2.circle(img, (70, 20), 12, 10, 2)
        cv2.circle(img, (50 + 3 * i, 55), 8, 60, -1)
        if dtype == np.uint16:
            img = img.astype(np.uint16) * 257
        path = folder / f"frame{i}{ext}"  # frame10 must sort after frame9
        frames_io.write_image_atomic(path, img)
        paths.append(path)
    return paths


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def no_temps(folder: Path) -> bool:
    return not any(frames_io.TEMP_MARK in p.name for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def gray_model(grayscale_model):
    return load_model(grayscale_model, "cpu")


class Interrupt(Exception):
    pass


# --------------------------------------------------------------------------- resume
@pytest.mark.parametrize(("ext", "stop_after"), [(".png", 3), (".png", 5), (".jpg", 4)])
def test_interrupted_run_resumes_to_byte_identical_outputs(tmp_path, gray_model, ext, stop_after):
    make_sequence(tmp_path / "in", 8, ext=ext)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    ref = batch.colorize_many(sources, tmp_path / "ref", gray_model, batch_size=3)
    assert ref.written == 8

    written: list[str] = []

    def stop(job):
        written.append(job.output.name)
        if len(written) == stop_after:
            raise Interrupt

    out = tmp_path / "out"
    with pytest.raises(Interrupt):  # one worker: at most 2 writes in flight past the stop
        batch.colorize_many(sources, out, gray_model, batch_size=3, workers=1, on_frame=stop)
    first = {p.name for p in out.glob(f"*{ext}")}
    assert stop_after <= len(first) < 8 and no_temps(out)

    res = batch.colorize_many(sources, out, gray_model, batch_size=3)
    assert res.skipped == len(first) and res.written == 8 - len(first)
    assert files(out) == files(tmp_path / "ref")  # same bytes, the settings record too
    # the carried colors really come from disk on resume: frames differ from a no-carry run
    plain = batch.colorize_many(sources, tmp_path / "plain", gray_model, carry=False)
    assert plain.written == 8 and files(tmp_path / "plain") != files(out)


_KILL_SCRIPT = """
import sys, time
from inkhue_engine import batch, frames_io
from inkhue_engine.model import load_model
model = load_model(sys.argv[1], "cpu")
sources = frames_io.expand_inputs([sys.argv[2]])
def slow(job):
    print("wrote", job.output.name, flush=True)
    time.sleep(0.25)
batch.colorize_many(sources, sys.argv[3], model, batch_size=2, on_frame=slow, progress=False)
print("finished", flush=True)
"""


@pytest.mark.slow
def test_sigkilled_run_resumes_to_byte_identical_outputs(tmp_path, grayscale_model, gray_model):
    make_sequence(tmp_path / "in", 8)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    batch.colorize_many(sources, tmp_path / "ref", gray_model, batch_size=2)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(grayscale_model), str(tmp_path / "in"), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("frame*.png"))) < 3:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the child wrote no frames"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = {p.name for p in out.glob("frame*.png")}
    assert 3 <= len(partial) < 8
    res = batch.colorize_many(sources, out, gray_model, batch_size=2)
    assert res.written == 8 - len(partial)
    assert files(out) == files(tmp_path / "ref") and no_temps(out)


def test_rerun_skips_everything_and_overwrite_redoes(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 4)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    out = tmp_path / "out"
    assert batch.colorize_many(sources, out, gray_model).written == 4
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = batch.colorize_many(sources, out, gray_model)
    assert (again.written, again.skipped) == (0, 4)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    redo = batch.colorize_many(sources, out, gray_model, overwrite=True)
    assert redo.written == 4


def test_resume_with_other_settings_is_refused(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 3)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    out = tmp_path / "out"
    batch.colorize_many(sources, out, gray_model)
    (out / "frame2.png").unlink()  # as if interrupted
    with pytest.raises(OutputError, match="other settings.*options"):
        batch.colorize_many(sources, out, gray_model, ColorizeOptions(detail=0.5))
    assert not (out / "frame2.png").exists()
    assert (
        batch.colorize_many(
            sources, out, gray_model, ColorizeOptions(detail=0.5), overwrite=True
        ).written
        == 3
    )
    # another shot with other settings into the same folder does not block this one
    other = tmp_path / "shot2"
    other.mkdir()
    for p in (tmp_path / "in").iterdir():
        p.rename(other / f"s2_{p.name}")
    make_sequence(tmp_path / "in", 3)
    shot2 = frames_io.expand_inputs([other])
    assert batch.colorize_many(shot2, out, gray_model).written == 3
    (out / "frame1.png").unlink()
    res = batch.colorize_many(sources, out, gray_model, ColorizeOptions(detail=0.5))
    assert (res.written, res.skipped) == (1, 2)
    (out / "s2_frame0.png").unlink()
    with pytest.raises(OutputError, match="s2_frame1.png: was written with other settings"):
        batch.colorize_many(shot2, out, gray_model, ColorizeOptions(detail=0.5))


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    stale = frames_io.temp_path_for(out / "frame1.png")
    stale.write_bytes(b"half a png")
    batch.colorize_many(frames_io.expand_inputs([tmp_path / "in"]), out, gray_model)
    assert not stale.exists() and no_temps(out)
    assert frames_io.read_image(out / "frame1.png").shape == (72, 96, 3)


# --------------------------------------------------------------------------- carry
def _lab_frames(folder: Path, n: int) -> list[np.ndarray]:
    return [
        rgb_to_lab(to_float01(frames_io.read_image(folder / f"frame{i}.png"))) for i in range(n)
    ]


def test_carrying_colors_reduces_flicker_on_static_regions(tmp_path, gray_model):
    inputs = make_sequence(tmp_path / "in", 8)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    batch.colorize_many(sources, tmp_path / "carry", gray_model)
    batch.colorize_many(sources, tmp_path / "plain", gray_model, carry=False)
    ins = [frames_io.read_image(p) for p in inputs]
    with_carry = metrics.flicker(_lab_frames(tmp_path / "carry", 8), ins, tol=0)
    without = metrics.flicker(_lab_frames(tmp_path / "plain", 8), ins, tol=0)
    assert without > 0.2  # the untrained model's colors move when the disc moves
    assert with_carry < 0.5 * without


def test_server_sequences_and_batches_carry_the_same_way(tmp_path, gray_model):
    # the server's frames jobs run batch.colorize_sequence; colorize_many carries inside
    # its sequencer: one frame at a time (batch size 1) they give the same pixels
    from inkhue_engine.pipeline import colorize_frame

    inputs = make_sequence(tmp_path / "in", 6)
    batch.colorize_many(
        frames_io.expand_inputs([tmp_path / "in"]), tmp_path / "out", gray_model, batch_size=1
    )
    frames = [(frames_io.read_image(p), None) for p in inputs]
    carried = list(
        batch.colorize_sequence(
            frames, lambda f, h: colorize_frame(f, gray_model, h), batch.CarrySettings()
        )
    )
    plain = [colorize_frame(f, gray_model) for f, _ in frames]
    assert any(not np.array_equal(c, p) for c, p in zip(carried, plain, strict=True))
    for path, got in zip(inputs, carried, strict=True):
        np.testing.assert_array_equal(frames_io.read_image(tmp_path / "out" / path.name), got)


def test_carry_follows_a_slow_fade_instead_of_freezing():
    settings = batch.CarrySettings(tolerance=3 / 255, erode_px=0, max_change=1.0)
    carry = batch.SequenceCarry(settings)
    carried = 0
    previous = None
    for value in range(100, 160, 2):  # +2/255 per frame: each step is within tolerance
        frame = np.full((4, 4), value, np.uint8)
        static = carry.observe(frame)
        fresh = np.repeat(frame[..., None], 3, axis=2)
        out = carry.apply(fresh, static, previous)
        assert abs(int(out[0, 0, 0]) - value) <= 3  # never further than the tolerance
        carried += int(static is not None and static.all())
        previous = out
    assert carried >= 10  # and it did carry, half of the time


def test_carry_refuses_large_color_changes_and_moving_edges():
    settings = batch.CarrySettings(tolerance=0.0, erode_px=1, max_change=0.06)
    carry = batch.SequenceCarry(settings)
    frame0 = np.full((10, 10), 255, np.uint8)
    assert carry.observe(frame0) is None
    prev = np.zeros((10, 10, 3), np.uint8)
    prev[:] = (200, 40, 40)  # red region
    frame1 = frame0.copy()
    frame1[0, 0] = 0  # one changed pixel: its neighbourhood is recomputed
    static = carry.observe(frame1)
    assert not static[0, 0] and not static[1, 0] and not static[0, 1] and static[5, 5]
    near = np.full_like(prev, 0)
    near[:] = (203, 42, 40)  # flicker: a small change -> carried
    np.testing.assert_array_equal(carry.apply(near, static, prev)[5, 5], prev[5, 5])
    np.testing.assert_array_equal(carry.apply(near, static, prev)[0, 0], near[0, 0])
    far = np.full_like(prev, 0)
    far[:] = (40, 40, 200)  # a new region's color (white fill over white paper) -> kept
    np.testing.assert_array_equal(carry.apply(far, static, prev), far)


def test_the_frames_of_a_group_are_prepared_in_parallel(gray_model, tmp_path, monkeypatch):
    # one reader thread left a core idle while the first group filled: two frames of a
    # group must be in prepare_frame at the same time (a barrier that one thread breaks)
    import threading

    from inkhue_engine import pipeline

    make_sequence(tmp_path / "in", 4)
    barrier = threading.Barrier(2, timeout=10)
    real = pipeline.prepare_frame

    def meet(*args, **kwargs):
        barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare_frame", meet)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    res = batch.colorize_many(
        sources, tmp_path / "out", gray_model, batch_size=2, workers=2, progress=False
    )
    assert res.written == 4


def _float_carry(frames, outs, settings):
    """The carry rule written plainly in float (the reference for SequenceCarry)."""
    ref, prev, result = None, None, []
    kernel = cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * settings.erode_px + 1, 2 * settings.erode_px + 1)
    )
    for frame, fresh in zip(frames, outs, strict=True):
        cur = to_float01(frame)
        if ref is None:
            ref, static = cur, None
        else:
            diff = np.abs(cur - ref)
            diff = diff.max(axis=2) if diff.ndim == 3 else diff
            static = (diff <= settings.tolerance).astype(np.uint8)
            if settings.erode_px > 0:
                static = cv2.erode(static, kernel, borderType=cv2.BORDER_REPLICATE)
            ref = np.where((static > 0)[..., None] if cur.ndim == 3 else static > 0, ref, cur)
            static = static.astype(bool)
        if static is not None and prev is not None:
            change = np.abs(prev.astype(np.float64) - fresh.astype(np.float64)).max(axis=2)
            keep = static & (change <= settings.max_change * 255)
            fresh = np.where(keep[..., None], prev, fresh)
        result.append((static, fresh))
        prev = fresh
    return result


@pytest.mark.parametrize("channels", [0, 3, 4])
@pytest.mark.parametrize("tolerance", [3 / 255, 1 / 255, 0.0, 10 / 255, 0.02, 0.5])
def test_carry_of_8_bit_frames_is_the_float_rule(channels, tolerance):
    # observe compares 8-bit frames without converting them to float: the same masks
    rng = np.random.default_rng(int(tolerance * 1000) + channels)
    shape = (40, 50) if channels == 0 else (40, 50, channels)
    frames, outs = [], []
    frame = rng.integers(0, 256, shape).astype(np.uint8)
    out = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    for _ in range(6):
        step = rng.integers(-4, 5, shape) * (rng.random(shape) < 0.6)
        frame = np.clip(frame.astype(int) + step, 0, 255).astype(np.uint8)
        out = np.where(
            rng.random((40, 50, 1)) < 0.8, out, rng.integers(0, 256, (40, 50, 3))
        ).astype(np.uint8)
        out = np.clip(out.astype(int) + rng.integers(-20, 21, out.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
        outs.append(out)
    settings = batch.CarrySettings(tolerance=tolerance, erode_px=1, max_change=0.06)
    carry = batch.SequenceCarry(settings)
    prev = None
    for (want_static, want_out), frame, fresh in zip(
        _float_carry(frames, outs, settings), frames, outs, strict=True
    ):
        static = carry.observe(frame)
        assert (static is None) == (want_static is None)
        if static is not None:
            np.testing.assert_array_equal(static, want_static)
        prev = carry.apply(fresh, static, prev)
        np.testing.assert_array_equal(prev, want_out)


def test_uint8_tolerance_rule_matches_every_pair_of_values():
    values = np.arange(256, dtype=np.uint8)
    a, b = np.meshgrid(values, values, indexing="ij")
    for tolerance in (3 / 255, 1 / 255, 2.5 / 255, 0.06, 0.0, 1.0):
        rule = batch._uint8_tolerance(tolerance)
        assert rule is not None
        want = np.abs(to_float01(a) - to_float01(b)) <= tolerance
        np.testing.assert_array_equal(batch._uint8_within(a, b, rule) > 0, want)
    assert batch._uint8_tolerance(-1.0) is None  # nothing is within: the float path


# --------------------------------------------------------------------------- planning
def test_plan_names_outputs_and_refuses_to_overwrite_inputs(tmp_path):
    paths = make_sequence(tmp_path / "in", 3)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    plan = batch.plan_outputs(sources, tmp_path / "out")
    assert plan.mode == "folder"
    assert [plan.frame_output(i, 0).name for i in range(3)] == [p.name for p in paths]
    with pytest.raises(OutputError, match="overwrite the input"):
        batch.plan_outputs(sources, tmp_path / "in")
    one = frames_io.expand_inputs([paths[0]])
    assert batch.plan_outputs(one, tmp_path / "x.tif").mode == "file"
    with pytest.raises(OutputError, match="overwrite the input"):
        batch.plan_outputs(one, paths[0])
    with pytest.raises(OutputError, match="image file but the input is 3 inputs"):
        batch.plan_outputs(sources, tmp_path / "x.png")
    assert batch.plan_outputs(sources, tmp_path / "x.mp4").mode == "video"
    (tmp_path / "b").mkdir()
    dup = frames_io.write_image_atomic(tmp_path / "b" / paths[0].name, np.zeros((4, 4), np.uint8))
    assert dup is None
    with pytest.raises(InputError, match="both be written"):
        batch.plan_outputs(
            frames_io.expand_inputs([tmp_path / "in", tmp_path / "b"]), tmp_path / "out"
        )


def test_sixteen_bit_sequence_stays_sixteen_bit(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 2, dtype=np.uint16)
    batch.colorize_many(frames_io.expand_inputs([tmp_path / "in"]), tmp_path / "out", gray_model)
    out = frames_io.read_image(tmp_path / "out" / "frame1.png")
    assert out.dtype == np.uint16 and out.shape == (72, 96, 3)


def test_video_in_frames_out_and_frames_in_video_out(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 6)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    clip = tmp_path / "clip.mp4"
    res = batch.colorize_many(sources, clip, gray_model, batch_size=4)
    assert res.written == 6 and res.output == clip
    info = frames_io.video_info(clip)
    assert (info.width, info.height) == (96, 72)
    assert frames_io.count_video_frames(clip) == 6
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["clip.mp4"]
    # an existing video output is complete: skipped
    assert batch.colorize_many(sources, clip, gray_model).written == 0

    res = batch.colorize_many(frames_io.expand_inputs([clip]), tmp_path / "frames", gray_model)
    names = sorted(p.name for p in (tmp_path / "frames").glob("*.png"))
    assert res.written == 6 and names == [f"frame_{i:05d}.png" for i in range(6)]
    assert frames_io.read_image(tmp_path / "frames" / names[0]).shape == (72, 96, 3)
    again = batch.colorize_many(frames_io.expand_inputs([clip]), tmp_path / "frames", gray_model)
    assert (again.written, again.skipped) == (0, 6)
    # resuming inside a video: the decoder is replayed, carried colors come from disk
    full = files(tmp_path / "frames")
    for n in (2, 4, 5):
        (tmp_path / "frames" / f"frame_{n:05d}.png").unlink()
    resumed = batch.colorize_many(frames_io.expand_inputs([clip]), tmp_path / "frames", gray_model)
    assert (resumed.written, resumed.skipped) == (3, 3)
    assert files(tmp_path / "frames") == full


# --------------------------------------------------------------------------- hints
def _hint_image(shape: tuple[int, int], color=(255, 0, 0)) -> np.ndarray:
    hint = np.zeros((*shape, 4), np.uint8)
    hint[20:26, 15:21] = (*color, 255)  # inside the rectangle
    return hint


def test_one_hint_image_for_all_frames_and_per_frame_hint_folders(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 3)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    hint = tmp_path / "hint.png"
    frames_io.write_image_atomic(hint, _hint_image((72, 96)))
    batch.colorize_many(sources, tmp_path / "one", gray_model, hints=hint, carry=False)
    batch.colorize_many(sources, tmp_path / "none", gray_model, carry=False)
    hints_dir = tmp_path / "hints"
    hints_dir.mkdir()
    frames_io.write_image_atomic(hints_dir / "frame1.png", _hint_image((72, 96), (0, 0, 255)))
    batch.colorize_many(sources, tmp_path / "per", gray_model, hints=hints_dir, carry=False)

    def a_b(folder: Path, i: int) -> np.ndarray:
        return _lab_frames(folder, 3)[i][30, 20, 1:]

    for i in range(3):  # the hinted rectangle turns red in every frame
        assert a_b(tmp_path / "one", i)[0] > a_b(tmp_path / "none", i)[0] + 20
    assert a_b(tmp_path / "per", 1)[1] < a_b(tmp_path / "none", 1)[1] - 20  # blue: b down
    np.testing.assert_array_equal(a_b(tmp_path / "per", 0), a_b(tmp_path / "none", 0))


def test_bad_hints_fail_before_any_output(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 2)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    small = tmp_path / "small.png"
    frames_io.write_image_atomic(small, _hint_image((10, 10)))
    with pytest.raises(InputError, match="hint image is 10x10 but frame frame0.png is 96x72"):
        batch.colorize_many(sources, tmp_path / "o1", gray_model, hints=small)
    assert not (tmp_path / "o1").exists()
    opaque = tmp_path / "opaque.png"
    frames_io.write_image_atomic(opaque, np.zeros((72, 96, 3), np.uint8))
    with pytest.raises(InputError, match="needs transparency"):
        batch.colorize_many(sources, tmp_path / "o2", gray_model, hints=opaque)
    empty_dir = tmp_path / "hint_dir"
    empty_dir.mkdir()
    frames_io.write_image_atomic(empty_dir / "other.png", _hint_image((72, 96)))
    with pytest.raises(InputError, match="no hint image is named like an input frame"):
        batch.colorize_many(sources, tmp_path / "o3", gray_model, hints=empty_dir)
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3"))


def test_hint_images_are_inputs_never_outputs(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 2)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    hints = tmp_path / "hints"
    hints.mkdir()
    frames_io.write_image_atomic(hints / "frame1.png", _hint_image((72, 96)))
    before = (hints / "frame1.png").read_bytes()
    for overwrite in (False, True):  # neither "already done" nor overwritten
        with pytest.raises(OutputError, match="frame1.png: the output would overwrite the input"):
            batch.colorize_many(sources, hints, gray_model, hints=hints, overwrite=overwrite)
    one = tmp_path / "one_hint.png"
    frames_io.write_image_atomic(one, _hint_image((72, 96)))
    single = frames_io.expand_inputs([tmp_path / "in" / "frame0.png"])
    with pytest.raises(OutputError, match="one_hint.png: the output would overwrite the input"):
        batch.colorize_many(single, one, gray_model, hints=one, overwrite=True)
    assert (hints / "frame1.png").read_bytes() == before
    assert sorted(p.name for p in hints.iterdir()) == ["frame1.png"]


def test_an_interrupted_overwrite_does_not_leave_old_outputs_claimed(tmp_path, gray_model):
    make_sequence(tmp_path / "in", 4)
    sources = frames_io.expand_inputs([tmp_path / "in"])
    out = tmp_path / "out"
    batch.colorize_many(sources, out, gray_model, ColorizeOptions(detail=0.5))
    old = files(out)

    class Stop(Exception):
        pass

    def stop_after_one(job):
        raise Stop

    with pytest.raises(Stop):  # redo with other settings, stopped after its first frame
        batch.colorize_many(
            sources, out, gray_model, overwrite=True, on_frame=stop_after_one, workers=1
        )
    rewritten = {n for n, data in files(out).items() if n.endswith(".png") and data != old[n]}
    assert 1 <= len(rewritten) < 4  # the frames written before the stop (one batch)
    # resuming with the new settings must not take the old frames for finished ones
    with pytest.raises(OutputError, match="was written with other settings"):
        batch.colorize_many(sources, out, gray_model)
    redo = batch.colorize_many(sources, out, gray_model, overwrite=True)
    assert redo.written == 4
    again = batch.colorize_many(sources, out, gray_model)  # a finished redo resumes cleanly
    assert (again.written, again.skipped) == (0, 4)
