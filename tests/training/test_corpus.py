"""The corpus recipe's pure selection / filter / split / manifest logic, SVG rasterization,
one file through the pipeline, a whole (fake, offline) package, and the sequence helpers."""

import dataclasses
import gzip
import io
import json
import os
import shutil
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest

from inkhue_engine.color import rgb_to_lab, to_float01
from inkhue_engine.errors import InputError
from inkhue_training import corpus, sequences
from inkhue_training.corpus import FileResult, Params

# scripts/setup.sh --dev installs librsvg2-bin; CI (scripts/test.sh sets
# INKHUE_REQUIRE_RSVG=1) fails rather than skips without it: SVGs feed most of the corpus.
_RSVG_MISSING = "rsvg-convert is not installed (apt-get install librsvg2-bin)"
if shutil.which("rsvg-convert") is None and os.environ.get("INKHUE_REQUIRE_RSVG") == "1":
    needs_rsvg = pytest.mark.usefixtures("_fail_without_rsvg")
else:
    needs_rsvg = pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason=_RSVG_MISSING)


@pytest.fixture
def _fail_without_rsvg() -> None:
    pytest.fail(f"INKHUE_REQUIRE_RSVG=1 but {_RSVG_MISSING}", pytrace=False)


def _canvas(frac: float, color=(220, 40, 40), size=100) -> np.ndarray:
    """White RGB uint8 square with the top ``frac`` of its rows painted ``color``."""
    img = np.full((size, size, 3), 255, np.uint8)
    img[: int(round(frac * size))] = color
    return img


# --- content filters ------------------------------------------------------------------------
def test_mostly_white_images_are_dropped():
    assert corpus.nonwhite_fraction(_canvas(0.10)) == pytest.approx(0.10)
    assert corpus.content_drop_reason(_canvas(0.10), 0.15, 12.0) == "mostly_white"
    assert corpus.content_drop_reason(_canvas(0.20), 0.15, 12.0) is None


def test_near_white_counts_as_white():
    img = _canvas(0.5, color=(245, 245, 245))
    assert corpus.nonwhite_fraction(img) == 0.0


def test_gray_drawings_are_dropped_for_low_chroma():
    gray = _canvas(0.5, color=(90, 90, 90))
    assert corpus.mean_chroma(gray) < 1.0
    assert corpus.content_drop_reason(gray, 0.15, 12.0) == "low_chroma"


def test_chroma_is_measured_on_the_drawing_not_the_paper():
    # 20% saturated red on white: the whole-image mean would be ~1/5 of the red's chroma
    img = _canvas(0.20)
    red_chroma = float(np.hypot(*rgb_to_lab(to_float01(img[:1, :1]))[0, 0, 1:]))
    assert corpus.mean_chroma(img) == pytest.approx(red_chroma, rel=1e-3)
    assert corpus.content_drop_reason(img, 0.15, 12.0) is None
    assert corpus.mean_chroma(np.full((4, 4, 3), 255, np.uint8)) == 0.0


def test_chroma_threshold_is_a_parameter():
    muted = _canvas(0.6, color=(120, 110, 95))  # a dull brown: chroma about 9
    chroma = corpus.mean_chroma(muted)
    assert 8.0 < chroma < 12.0
    assert corpus.content_drop_reason(muted, 0.15, 12.0) == "low_chroma"
    assert corpus.content_drop_reason(muted, 0.15, 8.0) is None


def test_size_filter():
    assert corpus.size_drop_reason(127, 500, 128) == "too_small"
    assert corpus.size_drop_reason(128, 128, 128) is None
    assert corpus.size_drop_reason(128, 385, 128, max_aspect=3.0) == "strip"
    assert corpus.size_drop_reason(128, 384, 128, max_aspect=3.0) is None


def test_target_shape_shrinks_to_long_side_and_never_enlarges():
    assert corpus.target_shape(1000, 500, 256, 128) == (256, 128)
    assert corpus.target_shape(100, 90, 256, 128) == (100, 90)
    # elongated: the short side is kept at min_side, the long side grows past size
    assert corpus.target_shape(300, 900, 256, 128) == (128, 384)
    # but never past 2 * size: the short side then falls below min_side (and is dropped)
    h, w = corpus.target_shape(200, 2000, 256, 128)
    assert w == 512 and h < 128


def test_composite_on_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 200  # red channel
    rgba[0, 0, 3] = 0  # transparent -> white
    rgba[0, 1, 3] = 255  # opaque -> its color
    rgba[0, 2, 3] = 128  # half -> between
    out = corpus.composite_on_white(rgba)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 1], [200, 0, 0])
    assert 120 < out[0, 2, 1] < 135 and 225 < out[0, 2, 0] < 230
    gray16 = np.full((2, 2), 128 * 257, np.uint16)  # 16-bit 128/255
    np.testing.assert_array_equal(corpus.composite_on_white(gray16), np.full((2, 2, 3), 128))
    gray_alpha = np.zeros((1, 1, 2), np.uint8)  # black, fully transparent
    np.testing.assert_array_equal(corpus.composite_on_white(gray_alpha), [[[255, 255, 255]]])


# --- selection by path ----------------------------------------------------------------------
OC = "usr/share/openclipart/svg"
TP = "usr/share/tuxpaint/stamps"
WN = "usr/share/games/wesnoth/1.16/data"
PW = "usr/share/wallpapers"


@pytest.mark.parametrize("folder", sorted(corpus.OPENCLIPART_EXCLUDED))
def test_openclipart_excluded_folders(folder):
    sel = corpus.select_files("openclipart-svg", [f"{OC}/{folder}/sub/x.svg", f"{OC}/food/x.svg"])
    assert sel[f"{OC}/{folder}/sub/x.svg"] == ("", "excluded_folder")
    assert sel[f"{OC}/food/x.svg"] == ("drawing", None)


def test_tuxpaint_rules():
    paths = [
        f"{TP}/symbols/money/coin.png",
        f"{TP}/animals/cat.svg",
        f"{TP}/animals/cat.png",  # the SVG's raster twin
        f"{TP}/animals/dog.png",
        f"{TP}/animals/dog_mirror.png",
        f"{TP}/animals/readme.txt",
    ]
    sel = corpus.select_files("tuxpaint-stamps-default", paths)
    assert sel[paths[0]] == ("", "excluded_folder")
    assert sel[paths[1]] == ("drawing", None)
    assert sel[paths[2]] == ("", "duplicate")
    assert sel[paths[3]] == ("drawing", None)
    assert sel[paths[4]] == ("", "duplicate")
    assert sel[paths[5]] == ("", "not_image")


def test_wesnoth_portraits_and_story_paintings_only():
    paths = [
        f"{WN}/core/images/portraits/elves/archer.png",
        f"{WN}/campaigns/tutorial/images/portraits/li'sar.png",
        f"{WN}/core/images/story/landscape-castle.jpg",
        f"{WN}/core/images/units/elves/archer.png",
    ]
    sel = corpus.select_files("wesnoth-1.16-data", paths)
    assert [sel[p] for p in paths] == [
        ("painting", None),
        ("painting", None),
        ("photo", None),
        ("", "not_selected"),
    ]


def test_plasma_keeps_the_largest_resolution_of_listed_photos():
    paths = [
        f"{PW}/Path/contents/images/1920x1080.jpg",
        f"{PW}/Path/contents/images/3840x2160.jpg",
        f"{PW}/Path/contents/screenshot.jpg",
        f"{PW}/Kokkini/contents/images/3840x2160.png",  # abstract art, not a photo
    ]
    sel = corpus.select_files("plasma-workspace-wallpapers", paths)
    assert sel[paths[0]] == ("", "smaller_duplicate")
    assert sel[paths[1]] == ("photo", None)
    assert sel[paths[2]] == ("", "not_selected")
    assert sel[paths[3]] == ("", "not_photo")


def test_game_and_photo_package_rules():
    hw = "usr/share/games/hedgewars/Data/Maps/Cheese"
    sel = corpus.select_files(
        "hedgewars-data", [f"{hw}/map.png", f"{hw}/mask.png", f"{hw}/preview.png"]
    )
    assert [v[1] for _, v in sorted(sel.items())] == [None, "not_selected", "duplicate"]
    st = "usr/share/games/supertux2/images"
    sel = corpus.select_files("supertux-data", [f"{st}/engine/editor/x.png", f"{st}/tiles/y.png"])
    assert sel[f"{st}/engine/editor/x.png"] == ("", "excluded_folder")
    assert sel[f"{st}/tiles/y.png"] == ("drawing", None)
    mate = "usr/share/backgrounds/mate"
    sel = corpus.select_files(
        "mate-backgrounds", [f"{mate}/nature/Aqua.jpg", f"{mate}/abstract/x.png"]
    )
    assert sel[f"{mate}/nature/Aqua.jpg"] == ("photo", None)
    assert sel[f"{mate}/abstract/x.png"] == ("", "not_selected")
    sel = corpus.select_files(
        "scikit-image", ["skimage/data/chelsea.png", "skimage/data/camera.png"]
    )
    assert sel["skimage/data/chelsea.png"] == ("photo", None)
    assert sel["skimage/data/camera.png"] == ("", "not_photo")


# --- sources added for base models 2.0 (issue 12) ---------------------------------------------
FD = "usr/share/freedroidrpg/data/graphics"


def test_freedroid_keeps_four_views_of_item_and_droid_renders_split_by_item():
    paths = [f"{FD}/items/weapons/laser_rifle/portrait_{i:04d}.jpg" for i in range(1, 33)]
    paths += [f"{FD}/droids/123/portrait_0001.jpg", f"{FD}/droids/123/123_1.png",
              f"{FD}/items/weapons/laser_rifle/inv_image.png", f"{FD}/gui/buttons/ok.png",
              f"{FD}/backgrounds/credits.jpg"]  # fmt: skip
    sel = corpus.select_files("freedroidrpg-data", paths)
    kept = sorted(p for p, (_, why) in sel.items() if why is None)
    assert [PurePosixPath(p).stem for p in kept] == [
        "portrait_0001",
        "portrait_0001",
        "portrait_0009",
        "portrait_0017",
        "portrait_0025",
    ]
    assert all(sel[p][0] == "render" for p in kept)
    assert sel[paths[1]] == ("", "duplicate")
    assert [sel[p][1] for p in paths[-4:]] == ["not_selected"] * 4
    # every view of one item lands in one split: no view of a dev item is trained on
    splits = {corpus.split_of(corpus.split_key("freedroidrpg-data", p), 0.5) for p in paths[:32]}
    assert len(splits) == 1
    assert corpus.CORPORA_BY_CONTENT["render"] == ("grayscale",)


def test_render_on_black_is_kept_and_a_gray_render_dropped(tmp_path):
    out = tmp_path / "out"
    (out / "grayscale" / "train").mkdir(parents=True)
    render = np.zeros((260, 130, 3), np.uint8)  # a lit object on black, as freedroidrpg's
    cv2.circle(render, (65, 130), 50, (40, 90, 200), -1)  # BGR: an orange ball
    gray = np.zeros((260, 130, 3), np.uint8)
    cv2.circle(gray, (65, 130), 50, (128, 128, 128), -1)
    results = []
    for name, img in (("ball.jpg", render), ("gray.jpg", gray)):
        cv2.imwrite(str(tmp_path / name), img)
        job = _job(tmp_path / name, out, content="render")
        assert [p.parent.parent.name for p in job.outputs] == ["grayscale"]
        results.append(corpus.process_file(job))
    assert results[0].reason is None and results[0].shape == (256, 128)
    assert results[1].reason == "low_chroma"
    # the black background does not count: a small colored object on black is kept
    small = np.zeros((260, 130, 3), np.uint8)
    cv2.circle(small, (65, 130), 18, (40, 90, 200), -1)
    assert corpus.mean_chroma(small) < 8 < corpus.mean_chroma(small, ignore_black=True)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    assert corpus.process_file(_job(tmp_path / "small.png", out, content="render")).reason is None


def test_lincity_keeps_one_frame_of_each_animated_tile():
    lc = "usr/share/games/lincity-ng/images"
    paths = [f"{lc}/tiles/blacksmith{i}.png" for i in range(7)]
    paths += [f"{lc}/tiles/school.png", f"{lc}/tiles/bridge_rail_0.png",
              f"{lc}/tiles/bridge_rail_90.png", f"{lc}/gui/buttons/ok.png"]  # fmt: skip
    sel = corpus.select_files("lincity-ng-data", paths)
    kept = sorted(PurePosixPath(p).name for p, (_, why) in sel.items() if why is None)
    assert kept == ["blacksmith0.png", "bridge_rail_0.png", "school.png"]
    assert sel[paths[3]] == ("", "duplicate")
    assert sel[f"{lc}/gui/buttons/ok.png"] == ("", "not_selected")


def test_neverball_shots_and_wesnoth_campaigns():
    nb = "usr/share/games/neverball"
    sel = corpus.select_files("neverball-data", [f"{nb}/shot-easy/a.jpg", f"{nb}/textures/x.png"])
    assert sel[f"{nb}/shot-easy/a.jpg"] == ("render", None)
    assert sel[f"{nb}/textures/x.png"] == ("", "not_selected")
    camp = f"{WN}/campaigns/Heir_To_The_Throne/images"
    paths = [f"{camp}/portraits/delfador.png", f"{camp}/story/httt_story1.jpg",
             f"{camp}/units/elves/x.png", f"{camp}/maps/overlay.png"]  # fmt: skip
    sel = corpus.select_files("wesnoth-1.16-httt", paths)
    assert [sel[p] for p in paths] == [
        ("painting", None),
        ("photo", None),
        ("", "not_selected"),
        ("", "not_selected"),
    ]
    assert {f"wesnoth-1.16-{c}" for c in corpus.WESNOTH_CAMPAIGNS} <= set(corpus.PACKAGES_BY_NAME)


# --- train-only sources added on 2026-12-01 (issue 12) ---------------------------------------
def _kept(package: str, paths: list[str]) -> dict[str, str]:
    sel = corpus.select_files(package, paths)
    return {p: content for p, (content, why) in sel.items() if why is None}


def test_naev_portraits_planets_and_base_ship_renders():
    g = "usr/share/naev/dat/gfx"
    paths = [f"{g}/portraits/empire/a.png", f"{g}/portraits/news.png",
             f"{g}/planet/exterior/forest.png",
             f"{g}/planet/exterior/uninhabited-rocky-blue-00.png",
             f"{g}/planet/space/A00.png", f"{g}/planet/space/asteroid/x.png",
             f"{g}/ship/lancelot/lancelot_comm.png", f"{g}/ship/lancelot/lancelot_empire_comm.png",
             f"{g}/ship/lancelot/lancelot.png", f"{g}/intro/questions.png",
             f"{g}/outfit/store/laser.png", f"{g}/commodity/books.png"]  # fmt: skip
    sel = corpus.select_files("naev-data", paths)
    assert _kept("naev-data", paths) == {
        paths[0]: "painting",
        paths[2]: "render",
        paths[4]: "render",
        paths[6]: "render",
        paths[9]: "drawing",
        paths[10]: "render",
    }
    assert sel[paths[3]] == sel[paths[7]] == ("", "duplicate")
    assert sel[paths[11]] == ("", "not_selected")


def test_endless_sky_keeps_only_photos_with_a_named_free_licence():
    es = "usr/share/games/endless-sky/images"
    paths = [f"{es}/land/bwerner3.jpg", f"{es}/land/fields11-sfiera.jpg", f"{es}/land/nasa7.jpg",
             f"{es}/land/beach0.jpg", f"{es}/scene/loc2.jpg", f"{es}/scene/market.jpg",
             f"{es}/ship/shuttle.png"]  # fmt: skip
    sel = corpus.select_files("endless-sky-data", paths)
    assert _kept("endless-sky-data", paths) == {p: "photo" for p in paths[:3] + [paths[4]]}
    assert sel[paths[3]] == sel[paths[5]] == ("", "unclear_licence")
    assert sel[paths[6]] == ("", "not_selected")


def test_flare_tuxpaint_and_widelands_rules():
    fl = "usr/share/games/flare/mods"
    paths = [f"{fl}/fantasycore/images/portraits/male01.png",
             f"{fl}/empyrean_campaign/images/portraits/goblin.png",
             f"{fl}/fantasycore/images/menus/backgrounds/fire_temple.png",
             f"{fl}/empyrean_campaign/images/cutscenes/arrival.png",
             f"{fl}/fantasycore/images/enemies/goblin.png"]  # fmt: skip
    assert _kept("flare-game", paths) == {
        paths[0]: "painting",
        paths[1]: "painting",
        paths[2]: "photo",
        paths[3]: "photo",
    }
    tp = "usr/share/tuxpaint"
    paths = [f"{tp}/templates/sheep.jpg", f"{tp}/starters/reef-back.png",
             f"{tp}/starters/hat.svg", f"{tp}/images/ui/x.png"]  # fmt: skip
    assert _kept("tuxpaint-data", paths) == {paths[0]: "photo", paths[1]: "photo"}
    wl = "usr/share/games/widelands/data"
    b = f"{wl}/tribes/buildings/productionsites/barbarians"
    paths = [f"{b}/bakery/idle_00.png", f"{b}/bakery/unoccupied_4.png", f"{b}/bakery/idle_4.png",
             f"{b}/bakery/menu.png", f"{b}/inn/unoccupied_2.png", f"{b}/inn/idle_4_00.png",
             f"{wl}/campaigns/atl01.wmf/pics/opol.png", f"{wl}/campaigns/atl02.wmf/pics/Opol.png",
             f"{wl}/campaigns/atl01.wmf/pics/background.jpg",
             f"{wl}/templates/default/loadscreens/mainmenu/Europe.jpg",
             f"{wl}/templates/default/loadscreens/editor.jpg",
             f"{wl}/templates/default/loadscreens/gameloading/summer/watt.png"]  # fmt: skip
    assert _kept("widelands-data", paths) == {
        paths[2]: "render",
        paths[4]: "render",
        paths[6]: "painting",
        paths[9]: "render",
        paths[10]: "render",
    }
    sel = corpus.select_files("widelands-data", paths)
    assert sel[paths[1]] == sel[paths[7]] == ("", "duplicate")


def test_freeorion_freecol_and_extremetuxracer_rules():
    fo = "usr/share/games/freeorion/default/data/art"
    paths = [f"{fo}/species/chato.png", f"{fo}/icons/specials_huge/x.png",
             f"{fo}/icons/ship_parts/y.png", f"{fo}/icons/tech/z.png"]  # fmt: skip
    assert _kept("freeorion-data", paths) == {
        paths[0]: "painting",
        paths[1]: "drawing",
        paths[2]: "render",
    }
    fc = "usr/share/games/freecol/default/resources/images"
    paths = [f"{fc}/foundingFathers/adamSmith.jpg", f"{fc}/foundingFathers/adamSmith.size6.jpg",
             f"{fc}/settlements/large.dutch.png", f"{fc}/settlements/large.dutch.size9.png",
             f"{fc}/settlements/large.english.size9.png", f"{fc}/settlements/inca_city.png",
             f"{fc}/units/civilian/farmer.png", f"{fc}/units/civilian/farmer.size2.png",
             f"{fc}/units/ship/caravel.png", f"{fc}/ui/logo.png"]  # fmt: skip
    sel = corpus.select_files("freecol", paths)
    assert _kept("freecol", paths) == {
        paths[1]: "painting",
        paths[3]: "drawing",
        paths[5]: "drawing",
        paths[7]: "drawing",
        paths[8]: "drawing",
    }
    assert sel[paths[0]] == sel[paths[2]] == sel[paths[6]] == ("", "smaller_duplicate")
    assert sel[paths[4]] == ("", "duplicate")
    etr = "usr/share/games/etr"
    paths = [f"{etr}/courses/default/bunny_hill/preview.png", f"{etr}/env/etr/alpine/frontH.png",
             f"{etr}/env/etr/alpine/front.png", f"{etr}/env/tuxracer/night/left.png",
             f"{etr}/players/avatar01.png", f"{etr}/textures/snow.png"]  # fmt: skip
    assert _kept("extremetuxracer-data", paths) == {
        paths[0]: "render",
        paths[1]: "photo",
        paths[3]: "photo",
        paths[4]: "photo",
    }


def test_train_only_packages_put_every_file_in_train(tmp_path):
    work = tmp_path / "work"
    _fake_wheel(work)
    sk = corpus.PACKAGES_BY_NAME["scikit-learn"]
    params = Params(dev_fraction=1.0)  # every file would be a dev file
    for pkg, split in ((sk, "dev"), (dataclasses.replace(sk, dev=False), "train")):
        out = tmp_path / split
        m = corpus.build_corpus(out, work, params, jobs=1, packages=(pkg,), progress=False)
        assert m["packages"]["scikit-learn"]["splits"]["grayscale"][split] == 2
        written = sorted(p.name for p in (out / "grayscale" / split).glob("*.png"))
        assert len(written) == 2
        # each dev image's kind is listed by its file name (the model card's target (d));
        # training images are only counted
        kinds = m["packages"]["scikit-learn"]["dev_kinds"]
        assert kinds == ({n: "photo" for n in written} if split == "dev" else {})
    added = [p.name for p in corpus.PACKAGES if not p.dev]
    assert added == ["naev-data", "endless-sky-data", "flare-game", "tuxpaint-data",
                     "widelands-data", "freeorion-data", "freecol",
                     "extremetuxracer-data", "openmoji", "twemoji-svg",
                     "fluentui-emoji",
                     *(f"dicebear-{s}" for s in corpus.DICEBEAR_STYLES)]  # fmt: skip


def test_unknown_package_is_refused():
    with pytest.raises(ValueError, match="no-such-package"):
        corpus.select_files("no-such-package", ["a.png"])


def test_output_names_are_flat_safe_and_unique():
    name = corpus.output_name("tuxpaint-stamps-default", f"{TP}/food/crème brûlée.svg")
    assert name == "tuxpaint-stamps-default__tuxpaint__stamps__food__cr_me_br_l_e.png"
    # two sources that would share an output name: the second is a duplicate
    sel = corpus.select_files("openclipart-svg", [f"{OC}/food/a b.svg", f"{OC}/food/a_b.svg"])
    assert sel[f"{OC}/food/a b.svg"] == ("drawing", None)
    assert sel[f"{OC}/food/a_b.svg"] == ("", "duplicate")


# --- split ----------------------------------------------------------------------------------
def test_split_is_deterministic_and_near_the_ratio():
    keys = [f"openclipart-svg/usr/share/openclipart/svg/food/item_{i}.svg" for i in range(5000)]
    first = [corpus.split_of(k, 0.09) for k in keys]
    assert first == [corpus.split_of(k, 0.09) for k in reversed(keys)][::-1]
    share = first.count("dev") / len(keys)
    assert 0.075 < share < 0.105
    assert set(first) == {"train", "dev"}


def test_a_smaller_dev_fraction_gives_a_subset_of_the_dev_files():
    keys = [f"pkg/file_{i}.png" for i in range(2000)]
    small = {k for k in keys if corpus.split_of(k, 0.05) == "dev"}
    large = {k for k in keys if corpus.split_of(k, 0.09) == "dev"}
    assert small and small < large


# --- manifest -------------------------------------------------------------------------------
def _results():
    return [
        FileResult("a.svg", "drawing", None, "train"),
        FileResult("b.svg", "drawing", None, "dev"),
        FileResult("c.png", "painting", None, "train"),
        FileResult("d.jpg", "photo", None, "train"),
        FileResult("e.svg", "drawing", "low_chroma", "train"),
        FileResult("f.svg", "", "excluded_folder", "dev"),
        FileResult("g.png", "drawing", "too_small", "train"),
    ]


def test_summarize_counts_kept_dropped_and_splits():
    rep = corpus.summarize(_results())
    assert rep["found"] == 7 and rep["kept"] == 4
    assert rep["dropped"] == {"excluded_folder": 1, "low_chroma": 1, "too_small": 1}
    assert rep["kept_by_content"] == {"drawing": 2, "painting": 1, "photo": 1}
    # photos go to the grayscale corpus only
    assert rep["splits"] == {
        "grayscale": {"train": 3, "dev": 1},
        "lineart": {"train": 2, "dev": 1},
    }


def test_manifest_structure_and_totals():
    rep = corpus.summarize(_results())
    packages = {
        "pkg-a": {**rep, "version": "1.0", "licence": "GPL-2", "source": "deb"},
        "pkg-b": {**rep, "version": "2.0", "licence": "CC0", "source": "wheel"},
    }
    m = corpus.build_manifest(packages, {"pkg-c": "apt-get download pkg-c failed"}, Params())
    json.dumps(m)  # serializable as is
    assert set(m) == {"format", "params", "corpora", "packages", "failed", "totals"}
    assert m["params"]["recipe_version"] == corpus.RECIPE_VERSION
    assert m["params"]["min_chroma"] == 12.0
    assert m["corpora"]["lineart"] == ["drawing", "painting"]
    assert m["packages"]["pkg-a"]["licence"] == "GPL-2"
    assert m["failed"] == {"pkg-c": "apt-get download pkg-c failed"}
    t = m["totals"]
    assert t["found"] == 14 and t["kept"] == 8
    assert t["dropped"]["low_chroma"] == 2
    assert t["splits"]["grayscale"] == {"train": 6, "dev": 2}
    assert t["images"] == {"grayscale": 8, "lineart": 6}


def test_every_listed_package_has_a_selection_rule():
    for pkg in corpus.PACKAGES:
        corpus.select_files(pkg.name, ["x/y.png"])  # raises for a package without rules
        assert pkg.licence and pkg.source in ("deb", "wheel", "npm", "dicebear")
        assert pkg.source != "npm" or pkg.archive_dirs  # an npm package names its folders


@pytest.mark.parametrize(
    "package,relpath,expected",
    [
        ("openmoji", "package/color/svg/1F600.svg", ("drawing", None)),
        ("openmoji", "package/color/svg/E0C0.svg", ("drawing", None)),  # OpenMoji's extras
        ("openmoji", "package/color/svg/1F44D-1F3FD.svg", ("", "skin_tone_variant")),
        ("openmoji", "package/color/svg/1F468-1F3FB-200D-1F4BB.svg", ("", "skin_tone_variant")),
        ("openmoji", "package/color/svg/1F1E9-1F1EA.svg", ("", "flag")),
        (
            "openmoji",
            "package/color/svg/1F3F4-E0067-E0062-E0065-E006E-E0067-E007F.svg",
            ("", "flag"),
        ),
        ("openmoji", "package/color/svg/0031-FE0F-20E3.svg", ("", "keycap")),
        ("openmoji", "package/black/svg/1F600.svg", ("", "not_selected")),  # outlines only
        ("openmoji", "package/color/72x72/1F600.png", ("", "not_selected")),
        ("twemoji-svg", "package/1f600.svg", ("drawing", None)),
        ("twemoji-svg", "package/1f1e6-1f1e8.svg", ("", "flag")),
        ("twemoji-svg", "package/1f3c3-1f3ff-200d-2640-fe0f.svg", ("", "skin_tone_variant")),
        ("twemoji-svg", "package/1f3f3-fe0f-200d-1f308.svg", ("drawing", None)),  # a flag object
        ("fluentui-emoji", "package/icons/flat/man-artist-default.svg", ("drawing", None)),
        (
            "fluentui-emoji",
            "package/icons/flat/man-artist-medium-dark.svg",
            ("", "skin_tone_variant"),
        ),
        ("fluentui-emoji", "package/icons/flat/man-artist-light.svg", ("", "skin_tone_variant")),
        ("fluentui-emoji", "package/icons/flat/green-salad.svg", ("drawing", None)),
        ("fluentui-emoji", "package/icons/modern/green-salad.svg", ("", "not_selected")),
    ],
)
def test_emoji_sets_keep_one_drawing_per_emoji(package, relpath, expected):
    assert corpus.select_files(package, [relpath])[relpath] == expected


# --- rasterization and one file through the pipeline ----------------------------------------
SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" viewBox="0 0 200 100">
<rect x="50" y="0" width="100" height="100" fill="#e02020"/></svg>"""


@needs_rsvg
@pytest.mark.parametrize("ext", [".svg", ".svgz"])
def test_svg_is_rasterized_to_the_long_side_on_white(tmp_path, ext):
    path = tmp_path / f"box{ext}"
    if ext == ".svgz":
        path.write_bytes(gzip.compress(SVG.encode()))
    else:
        path.write_text(SVG)
    rgba = corpus.render_svg(path, 256)
    assert rgba.shape == (128, 256, 4) and rgba.dtype == np.uint8
    assert rgba[64, 10, 3] == 0  # outside the rect: transparent
    np.testing.assert_array_equal(rgba[64, 128], [0xE0, 0x20, 0x20, 255])  # RGB order
    rgb = corpus.load_image(path, 256)
    np.testing.assert_array_equal(rgb[64, 10], [255, 255, 255])
    np.testing.assert_array_equal(rgb[64, 128], [0xE0, 0x20, 0x20])


@needs_rsvg
def test_elongated_svg_is_rendered_larger_to_keep_min_side(tmp_path):
    path = tmp_path / "wide.svg"
    path.write_text(SVG.replace('width="200"', 'width="300"').replace("0 0 200", "0 0 300"))
    h, w = corpus.load_image(path, 256).shape[:2]
    assert w == 256 and 85 <= h <= 86
    h, w = corpus.load_image(path, 256, min_side=128).shape[:2]
    assert h == 128 and 380 <= w <= 384  # 3:1, measured on the first (rounded) render


@needs_rsvg
def test_broken_svg_is_an_input_error(tmp_path):
    path = tmp_path / "broken.svg"
    path.write_text("<svg")
    with pytest.raises(InputError, match="broken.svg"):
        corpus.render_svg(path, 64)


def _job(src, out, content="drawing", params=None):
    rel = src.name
    r = FileResult(rel, content, None, "train")
    outputs = tuple(corpus._outputs_of("p", r, out))
    return corpus._Job(src, rel, content, "train", outputs, params or Params())


def test_process_file_writes_kept_images_to_both_corpora_once(tmp_path):
    out = tmp_path / "out"
    for c in corpus.CORPORA:
        (out / c / "train").mkdir(parents=True)
    src = tmp_path / "pic.png"
    bgra = np.zeros((400, 300, 4), np.uint8)
    bgra[100:300, 50:250] = (30, 160, 40, 255)  # an opaque green-ish box on transparent
    cv2.imwrite(str(src), bgra)
    job = _job(src, out)
    res = corpus.process_file(job)
    assert res.reason is None and res.shape == (256, 192)
    a, b = job.outputs
    assert a.parent.parent.name == "grayscale" and b.parent.parent.name == "lineart"
    img = cv2.imread(str(a))
    assert img.shape == (256, 192, 3)
    np.testing.assert_array_equal(img[0, 0], [255, 255, 255])  # alpha composited on white
    assert a.stat().st_ino == b.stat().st_ino  # hard link, no second copy
    mtime = a.stat().st_mtime_ns
    assert corpus.process_file(job).reason is None  # re-run: output reused, not rewritten
    assert a.stat().st_mtime_ns == mtime
    assert not list(out.rglob(".*tmp"))


def test_process_file_drops_without_writing(tmp_path):
    out = tmp_path / "out"
    src = tmp_path / "pale.png"
    cv2.imwrite(str(src), np.full((300, 300, 3), 250, np.uint8))
    res = corpus.process_file(_job(src, out))
    assert res.reason == "mostly_white" and res.nonwhite == 0.0
    src2 = tmp_path / "tiny.png"
    cv2.imwrite(str(src2), np.zeros((60, 60, 3), np.uint8))
    assert corpus.process_file(_job(src2, out)).reason == "too_small"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert corpus.process_file(_job(bad, out)).reason == "unreadable"
    assert not out.exists() or not list(out.rglob("*.png"))


def test_photos_keep_a_larger_size_and_skip_lineart(tmp_path):
    out = tmp_path / "out"
    (out / "grayscale" / "train").mkdir(parents=True)
    src = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    photo = cv2.resize(rng.integers(0, 255, (12, 20, 3), dtype=np.uint8), (2000, 1200))
    cv2.imwrite(str(src), photo)
    job = _job(src, out, content="photo")
    assert [p.parent.parent.name for p in job.outputs] == ["grayscale"]
    res = corpus.process_file(job)
    assert res.reason is None and res.shape == (614, 1024)


# --- a whole package, offline (a fake wheel in the work folder) -----------------------------
def _fake_wheel(work: Path) -> None:
    (work / "wheels").mkdir(parents=True)
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(work / "wheels" / "scikit_learn-9.9-py3-none-any.whl", "w") as zf:
        for name in ("china.jpg", "flower.jpg"):
            img = cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (400, 300))
            zf.writestr(f"sklearn/datasets/images/{name}", cv2.imencode(".jpg", img)[1].tobytes())
        gray = np.full((300, 400), 128, np.uint8)
        zf.writestr("sklearn/datasets/images/gray.jpg", cv2.imencode(".jpg", gray)[1].tobytes())
        zf.writestr("sklearn/__init__.py", "")
        zf.writestr("sklearn/datasets/images/README.txt", "china.jpg: CC-BY (Hong Kong)\n")
        zf.writestr("scikit_learn-9.9.dist-info/licenses/COPYING", "BSD 3-Clause\n")


def test_build_corpus_on_a_fake_wheel_and_rerun(tmp_path):
    out, work = tmp_path / "corpus", tmp_path / "work"
    _fake_wheel(work)
    pkgs = (corpus.PACKAGES_BY_NAME["scikit-learn"],)
    m = corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    rep = m["packages"]["scikit-learn"]
    assert rep["version"] == "9.9" and rep["source"] == "wheel"
    # the licence files are kept beside the images and named in the manifest
    assert rep["copyright_file"] == (
        "scikit_learn-9.9.dist-info/licenses/COPYING; sklearn/datasets/images/README.txt"
    )
    extracted = work / "extract" / "scikit-learn"
    assert (extracted / "scikit_learn-9.9.dist-info/licenses/COPYING").read_text() == (
        "BSD 3-Clause\n"
    )
    assert rep["found"] == 3 and rep["kept"] == 2 and rep["dropped"] == {"not_photo": 1}
    assert sum(rep["splits"]["grayscale"].values()) == 2
    assert sum(rep["splits"]["lineart"].values()) == 0
    files = sorted(p.name for p in (out / "grayscale").rglob("*.png"))
    assert files == [
        "scikit-learn__sklearn__datasets__images__china.png",
        "scikit-learn__sklearn__datasets__images__flower.png",
    ]
    assert json.loads((out / "manifest.json").read_text()) == m
    # re-run: the package's recorded results are reused and the manifest is the same
    stamp = {p: p.stat().st_mtime_ns for p in (out / "grayscale").rglob("*.png")}
    again = corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    assert {k: v for k, v in again["packages"]["scikit-learn"].items() if k != "seconds"} == {
        k: v for k, v in rep.items() if k != "seconds"
    }
    assert stamp == {p: p.stat().st_mtime_ns for p in (out / "grayscale").rglob("*.png")}
    # other settings into the same folder are refused, naming the folder
    with pytest.raises(InputError, match="other settings"):
        corpus.build_corpus(out, work, Params(size=128), jobs=1, packages=pkgs, progress=False)


def test_a_run_of_other_packages_keeps_the_earlier_manifest_entries(tmp_path):
    out, work = tmp_path / "corpus", tmp_path / "work"
    _fake_wheel(work)
    pkgs = (corpus.PACKAGES_BY_NAME["scikit-learn"],)
    first = corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    again = corpus.build_corpus(out, work, Params(), jobs=1, packages=(), progress=False)
    assert again["packages"] == first["packages"] and again["totals"] == first["totals"]
    assert json.loads((out / "manifest.json").read_text()) == again


def test_a_changed_selection_is_rebuilt_and_stale_outputs_removed(tmp_path, monkeypatch):
    out, work = tmp_path / "corpus", tmp_path / "work"
    _fake_wheel(work)
    pkgs = (corpus.PACKAGES_BY_NAME["scikit-learn"],)
    corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    monkeypatch.setitem(corpus.WHEEL_PHOTOS, "scikit-learn", frozenset({"china.jpg"}))
    m = corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    assert m["packages"]["scikit-learn"]["kept"] == 1
    assert m["packages"]["scikit-learn"]["dropped"] == {"not_photo": 2}
    files = [p.name for p in (out / "grayscale").rglob("*.png")]
    assert files == ["scikit-learn__sklearn__datasets__images__china.png"]


def _fake_npm(work: Path) -> None:
    """An npm tarball of twemoji-svg with one drawing, one skin-tone copy and a stray file."""
    (work / "npm").mkdir(parents=True)
    svg = SVG.encode()
    meta = json.dumps({"name": "@twemoji/svg", "version": "9.8.7"}).encode()
    with tarfile.open(work / "npm" / "twemoji-svg-9.8.7.tgz", "w:gz") as tf:
        for name, data in (
            ("package/package.json", meta),
            ("package/1f34f.svg", svg),
            ("package/1f44d-1f3fb.svg", svg),
            ("package/readme.md", b"hi"),
            ("package/license", b"MIT License\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@needs_rsvg
def test_build_corpus_on_a_fake_npm_package(tmp_path):
    out, work = tmp_path / "corpus", tmp_path / "work"
    _fake_npm(work)
    pkgs = (corpus.PACKAGES_BY_NAME["twemoji-svg"],)
    m = corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    rep = m["packages"]["twemoji-svg"]
    assert rep["source"] == "npm" and rep["version"] == "9.8.7"
    assert rep["archive"] == "twemoji-svg-9.8.7.tgz"
    assert rep["copyright_file"] == "package/license"
    assert (work / "extract" / "twemoji-svg" / "package/license").read_text() == "MIT License\n"
    assert rep["found"] == 2 and rep["kept"] == 1 and rep["dropped"] == {"skin_tone_variant": 1}
    # train-only, and a drawing: in both corpora
    assert rep["splits"]["grayscale"] == {"train": 1, "dev": 0}
    assert rep["splits"]["lineart"] == {"train": 1, "dev": 0}
    assert [p.name for p in (out / "lineart" / "train").glob("*.png")] == [
        "twemoji-svg__package__1f34f.png"
    ]


def test_an_archive_without_its_licence_file_is_refused_naming_both(tmp_path):
    work = tmp_path / "work"
    _fake_npm(work)
    tgz = work / "npm" / "twemoji-svg-9.8.7.tgz"
    with pytest.raises(
        corpus.ResourceError, match=r"twemoji-svg-9.8.7.tgz: no licence file 'package/LICENCE'"
    ):
        corpus.extract_npm(tgz, ("package/",), tmp_path / "x", ("package/LICENCE",))
    assert not (tmp_path / "x").exists()
    # a folder extracted before the licence files were kept is extracted again, with them
    corpus.extract_npm(tgz, ("package/",), tmp_path / "y")
    assert not (tmp_path / "y" / "package" / "license").exists()
    corpus.extract_npm(tgz, ("package/",), tmp_path / "y", ("package/license",))
    assert (tmp_path / "y" / "package" / "license").is_file()
    assert corpus.licence_paths(tmp_path / "y", ("package/license",)) == "package/license"


def test_every_wheel_and_npm_package_names_its_licence_files():
    for pkg in corpus.PACKAGES:
        if pkg.source in ("wheel", "npm"):
            assert pkg.licence_files, pkg.name


def test_a_broken_npm_tarball_is_a_resource_error_naming_it(tmp_path):
    (tmp_path / "npm").mkdir()
    bad = tmp_path / "npm" / "openmoji-1.0.0.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(corpus.ResourceError, match="openmoji-1.0.0.tgz.*delete it"):
        corpus.npm_version(bad)
    with pytest.raises(corpus.ResourceError, match="openmoji-1.0.0.tgz.*delete it"):
        corpus.extract_npm(bad, ("package/",), tmp_path / "x")
    assert not (tmp_path / "x").exists()


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")

#: A stand-in for @dicebear/core: an avatar is a box whose color comes from the seed, so
#: the test sees that each seed drew its own picture through DICEBEAR_SCRIPT.
_FAKE_CORE = """
const colors = { '0': '#e02020', '1': '#20a040', '2': '#2040e0' };
export function createAvatar(style, options) {
  if (style.broken) throw new Error('this style is broken');
  const fill = colors[options.seed.split('-').pop()];
  return { toString: () => `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">`
    + `<rect x="10" y="10" width="80" height="80" fill="${fill}"/></svg>` };
}
"""


def _fake_dicebear(work: Path, style: str, module: str = "export const meta = {};") -> Path:
    """An npm project folder as fetch_dicebear leaves it, with a fake core and style."""
    project = work / "dicebear" / f"dicebear-{style}"
    for name, version, code in (("core", "9.4.3", _FAKE_CORE), (style, "9.4.3", module)):
        pkg = project / "node_modules" / "@dicebear" / name
        pkg.mkdir(parents=True)
        meta = {"name": f"@dicebear/{name}", "version": version, "type": "module"}
        (pkg / "package.json").write_text(json.dumps({**meta, "exports": "./index.js"}))
        (pkg / "index.js").write_text(code)
    (project / "node_modules" / "@dicebear" / style / "LICENSE").write_text("CC BY 4.0\n")
    return project


def test_dicebear_styles_keep_their_generated_svgs_only():
    sel = corpus.select_files("dicebear-micah", ["0000.svg", "LICENSE.svg.txt", "a/0001.svg"])
    assert sel == {
        "0000.svg": ("drawing", None),
        "LICENSE.svg.txt": ("", "not_image"),
        "a/0001.svg": ("", "not_selected"),
    }
    assert all(not p.dev for p in corpus.PACKAGES if p.source == "dicebear")


@needs_node
@needs_rsvg
def test_build_corpus_draws_dicebear_avatars_from_seeds(tmp_path, monkeypatch):
    out, work = tmp_path / "corpus", tmp_path / "work"
    _fake_dicebear(work, "micah")
    monkeypatch.setattr(corpus, "DICEBEAR_SEEDS", 3)
    pkgs = (corpus.PACKAGES_BY_NAME["dicebear-micah"],)
    m = corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    rep = m["packages"]["dicebear-micah"]
    assert rep["source"] == "dicebear" and rep["version"] == "9.4.3"
    assert rep["archive"] == "dicebear-micah-9.4.3-3-seeds"
    assert rep["copyright_file"] == "LICENSE" and rep["licence"].startswith("CC-BY-4.0")
    assert (work / "extract" / "dicebear-micah" / "LICENSE").read_text() == "CC BY 4.0\n"
    assert rep["found"] == 3 and rep["kept"] == 3
    assert rep["splits"]["lineart"] == {"train": 3, "dev": 0}
    names = sorted(p.name for p in (out / "grayscale" / "train").glob("*.png"))
    assert names == [f"dicebear-micah__000{i}.png" for i in range(3)]
    # seed i drew color i: red, green, blue at the center
    centers = [cv2.imread(str(out / "grayscale" / "train" / n))[128, 128] for n in names]
    assert [int(np.argmax(c[::-1])) for c in centers] == [0, 1, 2]
    # more seeds: drawn again (the marker names the count), the manifest follows
    monkeypatch.setattr(corpus, "DICEBEAR_SEEDS", 2)
    m = corpus.build_corpus(out, work, Params(), jobs=1, packages=pkgs, progress=False)
    assert m["packages"]["dicebear-micah"]["kept"] == 2
    assert len(list((out / "lineart" / "train").glob("*.png"))) == 2


@needs_node
def test_a_dicebear_style_that_cannot_draw_is_a_resource_error_naming_it(tmp_path):
    project = _fake_dicebear(tmp_path, "toon-head", "export const broken = true;")
    dest = tmp_path / "x"
    with pytest.raises(corpus.ResourceError, match="@dicebear/toon-head.*broken.*delete"):
        corpus.draw_dicebear(project, "@dicebear/toon-head", "s", 2, dest)
    assert not dest.exists()


@needs_node
def test_a_dicebear_style_without_a_licence_is_refused(tmp_path):
    project = _fake_dicebear(tmp_path, "micah")
    (project / "node_modules" / "@dicebear" / "micah" / "LICENSE").unlink()
    with pytest.raises(corpus.ResourceError, match="micah: no LICENSE"):
        corpus.draw_dicebear(project, "@dicebear/micah", "s", 1, tmp_path / "x")
    assert not (tmp_path / "x").exists()


# --- sequences ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,frames",
    [
        ("5s 0f", 120),
        ("5s", 120),
        ("120f", 120),
        ("0f", 0),
        ("1m 2s 3f", 1491),
        ("0.5s", 12),
    ],
)
def test_parse_synfig_time(text, frames):
    assert sequences.parse_synfig_time(text, 24.0) == frames


def test_parse_synfig_time_refuses_bare_numbers():
    with pytest.raises(InputError, match="'23'"):
        sequences.parse_synfig_time("23", 24.0)


@pytest.mark.parametrize("gz", [False, True])
def test_read_canvas(tmp_path, gz):
    sif = (
        '<?xml version="1.0"?><canvas width="288" height="504" fps="24.000" '
        'begin-time="0f" end-time="5s 0f"><name>x</name></canvas>'
    )
    path = tmp_path / ("a.sifz" if gz else "a.sif")
    path.write_bytes(gzip.compress(sif.encode()) if gz else sif.encode())
    c = sequences.read_canvas(path)
    assert (c["begin"], c["end"], c["fps"], c["width"], c["height"]) == (0, 120, 24.0, 288, 504)


def test_chunks_group_consecutive_frames():
    assert sequences._chunks([0, 1, 2, 5, 6, 9], 2) == [(0, 1), (2, 2), (5, 6), (9, 9)]
    assert sequences._chunks(list(range(40)), 16) == [(0, 15), (16, 31), (32, 39)]
    assert sequences._chunks([], 16) == []


def test_derived_frames_keep_lightness():
    rgb = _canvas(0.5, color=(200, 60, 30))
    out = sequences.derived_frames(
        rgb, lineart_fn=lambda rgb01: np.full(rgb01.shape[:2], 50.0, np.float32)
    )
    assert set(out) == {"gray", "lineart"}
    L_color = rgb_to_lab(to_float01(rgb))[..., 0]
    L_gray = rgb_to_lab(to_float01(np.repeat(out["gray"][..., None], 3, 2)))[..., 0]
    assert np.abs(L_color - L_gray).max() < 0.5
    L_line = rgb_to_lab(to_float01(np.repeat(out["lineart"][..., None], 3, 2)))[..., 0]
    assert np.abs(L_line - 50.0).max() < 0.5
    assert set(sequences.derived_frames(rgb)) == {"gray"}


def test_outlines_only_keeps_the_lines_and_whitens_the_fills(tmp_path):
    """The line-art render of a Synfig document: outlines as drawn, filled shapes white
    (still hiding what they cover), groups and distortions kept, the rest switched off."""
    sif = """<?xml version="1.0"?><canvas width="8" height="8" begin-time="0f" end-time="2f">
      <layer type="linear_gradient" active="true" desc="sky"/>
      <layer type="PasteCanvas" active="true" desc="kid"><param name="canvas"><canvas>
        <layer type="region" active="true" desc="skin"><param name="color" use=":skin"/></layer>
        <layer type="polygon" active="true"><param name="color"><color>
          <r>0.2</r><g>0.4</g><b>0.6</b><a>0.5</a></color></param></layer>
        <layer type="outline" active="true" desc="ink"><param name="color"><color>
          <r>0</r><g>0</g><b>0</b><a>1</a></color></param></layer>
        <layer type="shade" active="true"/>
        <layer type="noise_distort" active="true"/>
      </canvas></param></layer>
      <layer type="text" active="true"/>
    </canvas>"""
    src = tmp_path / "a.sifz"
    src.write_bytes(gzip.compress(sif.encode()))
    dest = sequences.write_outlines_sif(src, tmp_path / "out" / "lines.sif")
    root = ET.parse(dest).getroot()
    layers = {(lay.get("type"), lay.get("desc")): lay for lay in root.iter("layer")}
    active = {key: lay.get("active") for key, lay in layers.items()}
    assert active == {
        ("linear_gradient", "sky"): "false",
        ("PasteCanvas", "kid"): "true",
        ("region", "skin"): "true",
        ("polygon", None): "true",
        ("outline", "ink"): "true",
        ("shade", None): "false",
        ("noise_distort", None): "true",
        ("text", None): "false",
    }

    def color(key):
        param = layers[key].find("param")
        assert param.get("use") is None
        return [param.find("color").find(c).text for c in "rgba"]

    assert color(("region", "skin")) == ["1.0", "1.0", "1.0", "1.0"]
    assert color(("polygon", None)) == ["1.0", "1.0", "1.0", "0.5"]  # its own opacity
    assert color(("outline", "ink")) == ["0", "0", "0", "1"]  # the lines as drawn
