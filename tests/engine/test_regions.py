"""Regions: lines split the frame; hints spread inside a region and never cross a line."""

import numpy as np

from inkhue_engine import regions


def two_rooms(h=20, w=30):
    """L image: white paper with one vertical dark line at x=15."""
    L = np.full((h, w), 95.0, np.float32)
    L[:, 15] = 5.0
    return L


def test_lineart_regions_split_at_the_line():
    labels = regions.regions_of(two_rooms(), "lineart")
    assert (labels[:, 15] == 0).all()
    assert len(np.unique(labels[:, :15])) == 1 and len(np.unique(labels[:, 16:])) == 1
    assert labels[0, 0] != labels[0, 20]


def _box_outline(paper: float, line: float, size: int = 40) -> np.ndarray:
    """L image: a one-pixel square outline of lightness ``line`` on ``paper``."""
    L = np.full((size, size), paper, np.float32)
    L[10, 10:30] = L[29, 10:30] = L[10:30, 10] = L[10:30, 29] = line
    return L


def test_a_thin_light_outline_closes_its_region():
    # an artist's anti-aliased outline is light gray at frame size (docs/REGIONS.md)
    labels = regions.regions_of(_box_outline(paper=100.0, line=75.0), "lineart")
    assert labels[20, 20] > 0 and labels[2, 2] > 0 and labels[20, 20] != labels[2, 2]
    # at the former cut (60) the same outline let the inside leak into the outside
    leaked = regions.regions_of(_box_outline(paper=100.0, line=75.0), "lineart", 60.0)
    assert leaked[20, 20] == leaked[2, 2]


def test_off_white_paper_is_not_cut_as_line():
    L = _box_outline(paper=86.0, line=20.0)  # a scan's gray paper, darker than the cut
    assert regions.paper_level(L) == 87.0
    assert regions.line_cut(L) == 87.0 - regions.PAPER_MARGIN
    lines = regions.lineart_lines(L)
    assert not lines[2, 2] and not lines[20, 20] and lines[10, 15]
    labels = regions.regions_of(L, "lineart")
    assert labels[20, 20] > 0 and labels[2, 2] > 0 and labels[20, 20] != labels[2, 2]
    # white paper: the fixed cut
    assert regions.line_cut(_box_outline(paper=100.0, line=20.0)) == regions.LINEART_L_THRESHOLD


def test_a_frame_of_black_fills_keeps_its_ink_as_line():
    L = np.full((40, 40), 5.0, np.float32)  # black fills everywhere but a paper gap
    L[15:25, 15:25] = 100.0
    assert regions.paper_level(L) < regions.LINEART_MIN_CUT
    assert regions.line_cut(L) == regions.LINEART_MIN_CUT
    labels = regions.regions_of(L, "lineart")
    assert labels[2, 2] == 0 and labels[20, 20] > 0


def test_paper_level_of_a_huge_frame_is_sampled_the_same():
    L = np.full((1500, 1500), 93.0, np.float32)
    L[::7] = 10.0
    assert regions.paper_level(L) == regions.paper_level(L[:500, :500]) == 93.0


def test_grayscale_regions_use_edges_of_l():
    labels = regions.regions_of(two_rooms(), "grayscale")
    assert labels[10, 2] != labels[10, 27]
    assert (labels[:, 15] == 0).all()


def test_spread_hints_fills_only_the_hinted_region():
    labels = regions.regions_of(two_rooms(), "lineart")
    ab = np.zeros((20, 30, 2), np.float32)
    mask = np.zeros((20, 30), np.float32)
    ab[3, 3] = [40, -10]
    ab[4, 4] = [20, 10]
    mask[3, 3] = mask[4, 4] = 1
    dense_ab, dense_mask = regions.spread_hints(labels, ab, mask)
    left = labels == labels[0, 0]
    np.testing.assert_allclose(dense_ab[left], np.tile([30, 0], (left.sum(), 1)))
    assert (dense_mask[left] == 1).all()
    assert (dense_mask[:, 15:] == 0).all() and (dense_ab[:, 15:] == 0).all()


def test_spread_hints_without_hints_is_all_zero():
    labels = regions.regions_of(two_rooms(), "lineart")
    ab, mask = regions.spread_hints(labels, np.zeros((20, 30, 2)), np.zeros((20, 30)))
    assert not ab.any() and not mask.any()


def test_hint_on_a_line_stays_a_point():
    labels = regions.regions_of(two_rooms(), "lineart")
    ab = np.zeros((20, 30, 2), np.float32)
    mask = np.zeros((20, 30), np.float32)
    ab[5, 15] = [10, 10]
    mask[5, 15] = 1
    dense_ab, dense_mask = regions.spread_hints(labels, ab, mask)
    assert dense_mask.sum() == 1 and dense_ab[5, 15].tolist() == [10, 10]


def test_flat_fill_colors_lines_from_neighbours_and_leaves_unhinted_gray():
    L = np.full((20, 30), 95.0, np.float32)
    L[:, 14:17] = 5.0  # a 3-px line
    labels = regions.regions_of(L, "lineart")
    ab = np.zeros((20, 30, 2), np.float32)
    mask = np.zeros((20, 30), np.float32)
    ab[2, 2] = [50, 50]
    mask[2, 2] = 1
    filled = regions.flat_fill(labels, ab, mask)
    assert filled[10, 5].tolist() == [50, 50]
    assert filled[10, 25].tolist() == [0, 0]
    assert filled[10, 14].tolist() == [50, 50]  # line pixel next to the filled room
    assert filled[10, 16].tolist() == [0, 0]  # line pixel next to the gray room


def test_region_medians_and_consolidate():
    labels = np.array([[1, 1, 1, 0, 2, 2]], np.int32)
    values = np.array([[[1.0], [5.0], [3.0], [9.0], [7.0], [8.0]]], np.float32)
    med = regions.region_medians(labels, values)
    assert med[1, 0] == 3.0 and med[2, 0] in (7.0, 8.0)
    out = regions.consolidate(labels, values)
    assert out[0, :3, 0].tolist() == [3.0, 3.0, 3.0]
    assert out[0, 3, 0] == 9.0  # line pixel keeps its own value


def test_region_means_weighted():
    labels = np.array([[1, 1, 2]], np.int32)
    values = np.array([[[2.0], [4.0], [6.0]]], np.float32)
    means, total = regions.region_means(labels, values, np.array([[1, 0, 1]]))
    assert means[1, 0] == 2.0 and means[2, 0] == 6.0 and total.tolist() == [0, 1, 1]


def test_anchor_to_hints_moves_the_mean_and_keeps_the_variation():
    labels = regions.regions_of(two_rooms(), "lineart")
    left, right = labels[0, 0], labels[0, 20]
    rng = np.random.default_rng(0)
    values = rng.normal(0, 5, (20, 30, 2)).astype(np.float32)
    n = int(labels.max()) + 1
    hint = np.zeros((n, 2), np.float32)
    hinted = np.zeros(n, bool)
    hint[left], hinted[left] = [30, -20], True
    hint[0], hinted[0] = [99, 99], True  # the lines are never one area: ignored
    out = regions.anchor_to_hints(labels, values, hint, hinted)
    sel = labels == left
    np.testing.assert_allclose(out[sel].mean(axis=0), [30, -20], atol=1e-4)
    np.testing.assert_allclose(
        out[sel] - out[sel].mean(axis=0), values[sel] - values[sel].mean(axis=0), atol=1e-4
    )
    untouched = labels != left
    np.testing.assert_array_equal(out[untouched], values[untouched])
    assert regions.anchor_to_hints(labels, values, hint, np.zeros(n, bool)) is not None
    np.testing.assert_array_equal(
        regions.anchor_to_hints(labels, values, hint, np.zeros(n, bool)), values
    )
    assert (labels == right).any()


def _random_labels(rng, h, w, density):
    L = np.where(rng.random((h, w)) < density, 5.0, 95.0).astype(np.float32)
    return regions.regions_of(L, "lineart")


def test_opencv_numbers_non_line_pixels_in_raster_order():
    # the numbering regions.line_sources looks up (its table is sized by the largest
    # number, so it does not depend on this order; the test documents what OpenCV does)
    import cv2

    rng = np.random.default_rng(1)
    for _ in range(10):
        lines = (
            rng.random((int(rng.integers(1, 90)), int(rng.integers(1, 90)))) < rng.random()
        ).astype(np.uint8)
        _, nearest = cv2.distanceTransformWithLabels(
            lines, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        free = np.flatnonzero(lines.ravel() == 0)
        np.testing.assert_array_equal(nearest.ravel()[free], np.arange(1, free.size + 1))


def test_fill_labels_is_fill_lines_of_the_labels():
    rng = np.random.default_rng(2)
    for density in (0.0, 0.2, 0.6, 1.0):
        labels = _random_labels(rng, 41, 57, density)
        np.testing.assert_array_equal(
            regions.fill_labels(labels), regions.fill_lines(labels, labels)
        )
    labels = regions.regions_of(two_rooms(), "lineart")
    filled = regions.fill_labels(labels)
    assert (filled != 0).all() and filled[0, 15] in (labels[0, 14], labels[0, 16])


def test_region_medians_match_a_lexsort_reference():
    rng = np.random.default_rng(3)
    labels = _random_labels(rng, 50, 60, 0.3)
    values = rng.normal(0, 20, (50, 60, 2)).astype(np.float32)
    values[rng.random((50, 60)) < 0.2] = 0.0
    values[rng.random((50, 60)) < 0.1] = -0.0
    values[rng.random((50, 60)) < 0.1] = -3.5  # ties
    n = int(labels.max()) + 1
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n)
    mid = np.concatenate([[0], np.cumsum(counts)[:-1]]) + np.maximum(counts - 1, 0) // 2
    med = regions.region_medians(labels, values)
    for c in range(2):
        v = values[..., c].ravel()
        order = np.lexsort((v, flat))
        np.testing.assert_array_equal(med[counts > 0, c], v[order[mid[counts > 0]]])


def test_sparse_weights_give_the_dense_sums():
    rng = np.random.default_rng(4)
    labels = _random_labels(rng, 40, 40, 0.3)
    values = rng.normal(0, 20, (40, 40, 2)).astype(np.float32)
    weights = (rng.random((40, 40)) < 0.05) * rng.random((40, 40))
    means, total = regions.region_means(labels, values, weights)
    n = int(labels.max()) + 1
    w = weights.ravel()
    ref_total = np.bincount(labels.ravel(), weights=w, minlength=n)
    np.testing.assert_array_equal(total, ref_total)
    for c in range(2):
        sums = np.bincount(
            labels.ravel(), weights=values[..., c].ravel().astype(float) * w, minlength=n
        )
        ref = np.divide(sums, ref_total, out=np.zeros(n), where=ref_total > 0)
        np.testing.assert_array_equal(means[:, c], ref.astype(np.float32))


def _nearest_free_pixel(lines: np.ndarray) -> np.ndarray:
    """Reference: flat index of each pixel's nearest pixel off ``lines``, looked up over
    the whole frame (what fill_lines did before the band lookup)."""
    import cv2

    _, nearest = cv2.distanceTransformWithLabels(
        lines.view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    free = np.flatnonzero(~lines.ravel())
    lookup = np.zeros(int(nearest.max()) + 1, np.int64)
    lookup[np.take(nearest.ravel(), free)] = free
    return np.take(lookup, nearest.ravel())


def test_line_sources_are_the_nearest_free_pixels_of_the_line_pixels():
    """The band lookup gives what the whole-frame lookup gives, on random masks."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = rng.integers(2, 40, 2)
        lines = rng.random((h, w)) < rng.uniform(0.05, 0.9)
        if lines.all() or not lines.any():
            continue
        on_lines, src = regions.line_sources(lines)
        assert np.array_equal(on_lines, np.flatnonzero(lines))
        assert np.array_equal(src, _nearest_free_pixel(lines)[on_lines])
        assert not lines.ravel()[src].any()
