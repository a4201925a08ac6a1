"""The training dataset: reading, crops, Lab targets, spread hints, bad files skipped."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch

from inkhue_engine.color import rgb_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.regions import regions_of
from inkhue_training.data import (
    ColorImageDataset,
    DataConfig,
    list_images,
    make_item,
    read_rgb,
)

COLORS = [(0.9, 0.2, 0.2), (0.2, 0.8, 0.3), (0.2, 0.3, 0.9), (0.95, 0.85, 0.2)]


def quadrants(size=96) -> np.ndarray:
    """Four flat colored quadrants separated by black 3-px lines: RGB float01."""
    rgb = np.zeros((size, size, 3), np.float32)
    h = size // 2
    for i, (ys, xs) in enumerate(
        [
            (slice(0, h), slice(0, h)),
            (slice(0, h), slice(h, None)),
            (slice(h, None), slice(0, h)),
            (slice(h, None), slice(h, None)),
        ]
    ):
        rgb[ys, xs] = COLORS[i]
    rgb[h - 1 : h + 2] = 0
    rgb[:, h - 1 : h + 2] = 0
    return rgb


def write_rgb(path, rgb01, dtype=np.uint8):
    scale = 255 if dtype == np.uint8 else 65535
    bgr = np.round(rgb01[..., ::-1] * scale).astype(dtype)
    assert cv2.imwrite(str(path), bgr)
    return path


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    write_rgb(d / "a.png", quadrants())
    write_rgb(d / "sub" / "b.jpg", quadrants()[::-1])
    (d / "notes.txt").write_text("not an image")
    return d


def test_list_images_recursive_and_by_extension(folder, tmp_path):
    files = list_images([folder])
    assert [f.name for f in files] == ["a.png", "b.jpg"]
    with pytest.raises(InputError, match="no such image folder"):
        list_images([tmp_path / "missing"])


@pytest.mark.parametrize("task", ["grayscale", "lineart"])
def test_item_shapes_types_and_determinism(folder, task):
    ds = ColorImageDataset(list_images([folder]), DataConfig(task=task, crop_size=64), seed=1)
    x, y = ds[0]
    assert x.shape == (4, 64, 64) and x.dtype == torch.float32
    assert y.shape == ((2 if task == "grayscale" else 3), 64, 64) and y.dtype == torch.float32
    x2, y2 = ds[0]
    assert torch.equal(x, x2) and torch.equal(y, y2)
    ds.set_epoch(1)
    changed = [not torch.equal(ds[i][0], x) for i in range(3)]
    assert any(changed)  # a new epoch draws other crops / hints


def test_grayscale_input_is_true_L_and_target_its_ab():
    rgb = quadrants(64)
    cfg = DataConfig(task="grayscale", crop_size=64, augment=False, fixed_hints=0)
    inp, tgt = make_item(rgb, None, cfg, np.random.default_rng(0))
    lab = rgb_to_lab(rgb)
    np.testing.assert_allclose(inp[0], lab[..., 0], atol=1e-4)
    np.testing.assert_allclose(tgt, lab[..., 1:].transpose(2, 0, 1), atol=1e-4)
    assert not inp[1:].any()  # no hints: zeros


def test_lineart_input_is_synthesized_lines_and_target_is_lab():
    rgb = quadrants(64)
    cfg = DataConfig(task="lineart", crop_size=64, augment=False, fixed_hints=0)
    inp, tgt = make_item(rgb, None, cfg, np.random.default_rng(0))
    assert inp[0].max() == 100.0 and inp[0].min() < 30  # paper and ink
    assert inp[0][10, 10] == 100.0  # inside a flat quadrant: paper, not the true L
    np.testing.assert_allclose(tgt, rgb_to_lab(rgb).transpose(2, 0, 1), atol=1e-4)


@pytest.mark.parametrize("task", ["grayscale", "lineart"])
def test_hints_are_spread_over_whole_regions_with_true_colors(task):
    rgb = quadrants(64)
    cfg = DataConfig(task=task, crop_size=64, augment=False, fixed_hints=3)
    inp, _ = make_item(rgb, None, cfg, np.random.default_rng(5))
    labels = regions_of(inp[0], task)
    mask = inp[3] > 0
    lab = rgb_to_lab(rgb)
    hinted = np.unique(labels[mask & (labels > 0)])
    assert 1 <= len(hinted) <= 3
    for r in hinted:
        region = labels == r
        assert mask[region].all()  # the whole region, not a 3x3 dot
        true_ab = np.median(lab[region][:, 1:], axis=0)
        np.testing.assert_allclose(inp[1:3][:, region].mean(1), true_ab, atol=3.0)
    assert not mask[labels > 0][~np.isin(labels[labels > 0], hinted)].any()


def test_no_hint_probability():
    rgb = quadrants(64)
    rng = np.random.default_rng(0)
    cfg = DataConfig(task="grayscale", crop_size=64, p_no_hints=0.3)
    empty = sum(not make_item(rgb, None, cfg, rng)[0][3].any() for _ in range(200))
    assert 0.2 * 200 < empty < 0.4 * 200
    cfg0 = DataConfig(task="grayscale", crop_size=64, p_no_hints=1.0)
    assert not any(make_item(rgb, None, cfg0, rng)[0][3].any() for _ in range(10))


def test_big_images_are_scaled_down_before_cropping(tmp_path):
    # a 1024-px image of 4 quadrants: a 64-px crop after scaling sees more than one color
    big = quadrants(1024)
    cfg = DataConfig(task="grayscale", crop_size=64, scale_max=1.0)
    _, tgt = make_item(big, None, cfg, np.random.default_rng(0))
    assert np.ptp(tgt[0]) > 20  # more than one quadrant inside the crop


def test_sixteen_bit_and_alpha(tmp_path):
    rgb = np.zeros((40, 40, 3), np.float32)
    rgb[..., 0] = 40000 / 65535  # not representable in 8 bits
    p = write_rgb(tmp_path / "deep.png", rgb, np.uint16)
    got, alpha = read_rgb(p)
    assert alpha is None
    assert got[0, 0, 0] == pytest.approx(40000 / 65535, abs=1e-6)
    # RGBA: a transparent image composites onto white without color augmentation
    bgra = np.zeros((40, 40, 4), np.uint8)
    bgra[:20, :, 2] = 255  # red top half, opaque
    bgra[:20, :, 3] = 255
    assert cv2.imwrite(str(tmp_path / "cut.png"), bgra)
    rgb, alpha = read_rgb(tmp_path / "cut.png")
    cfg = DataConfig(task="grayscale", crop_size=32, augment=False, fixed_hints=0)
    inp, tgt = make_item(rgb, alpha, cfg, np.random.default_rng(0))
    assert inp[0].max() == pytest.approx(100, abs=0.1)  # the transparent part is white paper
    assert tgt[0].max() > 50  # the red part is red (a > 50)


def test_corrupt_and_empty_files_are_skipped_with_a_warning(folder):
    (folder / "garbage.png").write_bytes(np.random.default_rng(0).bytes(500))
    (folder / "empty.jpg").write_bytes(b"")
    files = list_images([folder])
    assert len(files) == 4
    ds = ColorImageDataset(files, DataConfig(task="grayscale", crop_size=32), seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (4, 32, 32) for x, _ in items)
    text = "\n".join(str(w.message) for w in caught)
    assert "garbage.png" in text and "empty.jpg" in text
    assert sorted(p.name for p in ds.unreadable) == ["empty.jpg", "garbage.png"]
    # each bad file is warned about once, not at every visit
    assert sum("garbage.png" in str(w.message) for w in caught) == 1
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        [ds[i] for i in range(len(ds))]
    assert not again


def test_corrupt_file_in_dataloader_workers_does_not_crash(folder, capfd):
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ds = ColorImageDataset(list_images([folder]), DataConfig(crop_size=32), seed=0, repeat=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = list(loader)
    assert sum(len(b[0]) for b in batches) == len(ds) == 6
    # the workers' warning reaches stderr, and the main process knows the file is bad
    err = capfd.readouterr().err
    assert "skipping unreadable training image" in err and "garbage.png" in err
    assert [p.name for p in ds.unreadable] == ["garbage.png"]


def test_all_files_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"nope")
    ds = ColorImageDataset(list_images([tmp_path]), DataConfig(crop_size=32))
    with pytest.warns(UserWarning), pytest.raises(InputError, match="could be read"):
        ds[0]
    with pytest.raises(InputError, match="no training images"):
        ColorImageDataset([], DataConfig())
