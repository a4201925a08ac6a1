"""Palette files (.kpl, .gpl) and CIEDE2000 snapping."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from inkhue_engine.color import hex_to_lab
from inkhue_engine.errors import InputError
from inkhue_engine.palette import (
    load_palette,
    normalize_hex,
    snap_lab_to_palette,
    snap_regions_to_palette,
)

GPL = """GIMP Palette
Name: Test
Columns: 4
# a comment
255   0   0\tRed
  0 128 255 Sky blue
#another comment

 16  16  16
"""


def _kpl(path, colorset: str, name="colorset.xml"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/x-krita-palette")
        zf.writestr(name, colorset)
        zf.writestr("profiles.xml", "<Profiles/>")
    return path


def test_gpl_parses_colors_names_comments(tmp_path):
    p = tmp_path / "p.gpl"
    p.write_text(GPL)
    assert load_palette(p) == ["#ff0000", "#0080ff", "#101010"]


@pytest.mark.parametrize(
    "line, lineno",
    [("255 0 Red", 3), ("300 0 0 Too big", 3), ("a b c", 3)],
)
def test_gpl_broken_line_names_file_and_line(tmp_path, line, lineno):
    p = tmp_path / "broken.gpl"
    p.write_text(f"GIMP Palette\nName: x\n{line}\n")
    with pytest.raises(InputError, match=rf"broken\.gpl: line {lineno}"):
        load_palette(p)


def test_not_a_palette_and_empty_palette(tmp_path):
    p = tmp_path / "x.gpl"
    p.write_text("hello\n1 2 3\n")
    with pytest.raises(InputError, match="not a palette"):
        load_palette(p)
    empty = tmp_path / "empty.gpl"
    empty.write_text("GIMP Palette\nName: e\n# nothing\n")
    with pytest.raises(InputError, match="no colors"):
        load_palette(empty)
    with pytest.raises(InputError, match="not found"):
        load_palette(tmp_path / "missing.kpl")


def test_kpl_rgb_srgb_gray_groups(tmp_path):
    xml = """<Colorset version="1.0" name="T" columns="4" rows="2">
  <ColorSetEntry name="Red" id="1" bitdepth="U8" spot="false">
    <RGB space="sRGB-elle-V2-srgbtrc.icc" r="1" g="0" b="0"/>
    <Position row="0" column="0"/>
  </ColorSetEntry>
  <ColorSetEntry name="Half"><sRGB r="0.5" g="0.5" b="0.5"/></ColorSetEntry>
  <Group name="g" rows="1">
    <ColorSetEntry name="Gray"><Gray g="0.2" space="Gray-D50"/></ColorSetEntry>
    <ColorSetEntry name="LinearHalf">
      <RGB space="sRGB-elle-V2-g10.icc" r="0.2159" g="0" b="1"/>
    </ColorSetEntry>
  </Group>
</Colorset>"""
    colors = load_palette(_kpl(tmp_path / "p.kpl", xml))
    # a linear-light profile (g10): 0.2159 linear is 0.502 in sRGB (0x80)
    assert colors == ["#ff0000", "#808080", "#333333", "#8000ff"]


def test_kpl_lab_both_conventions_and_cmyk(tmp_path):
    xml = """<Colorset name="T">
  <ColorSetEntry name="white"><Lab L="100" a="0" b="0"/></ColorSetEntry>
  <ColorSetEntry name="white01"><Lab L="1" a="0.5" b="0.5"/></ColorSetEntry>
  <ColorSetEntry name="cyan"><CMYK c="1" m="0" y="0" k="0"/></ColorSetEntry>
</Colorset>"""
    assert load_palette(_kpl(tmp_path / "lab.kpl", xml)) == ["#ffffff", "#ffffff", "#00ffff"]


def test_kpl_broken_files_name_the_problem(tmp_path):
    bad_xml = _kpl(tmp_path / "badxml.kpl", "<Colorset><ColorSetEntry></Colorset>")
    with pytest.raises(InputError, match=r"badxml\.kpl: colorset\.xml line 1: broken XML"):
        load_palette(bad_xml)
    no_attr = _kpl(
        tmp_path / "noattr.kpl",
        '<Colorset><ColorSetEntry name="x"><RGB r="1" g="oops"/></ColorSetEntry></Colorset>',
    )
    with pytest.raises(InputError, match=r"noattr\.kpl: colorset\.xml entry 1 \(x\)"):
        load_palette(no_attr)
    unknown = _kpl(
        tmp_path / "unknown.kpl",
        '<Colorset><ColorSetEntry name="y"><HSV h="1"/></ColorSetEntry></Colorset>',
    )
    with pytest.raises(InputError, match="no color element"):
        load_palette(unknown)
    missing = _kpl(tmp_path / "nocs.kpl", "<Colorset/>", name="other.xml")
    with pytest.raises(InputError, match="no colorset.xml"):
        load_palette(missing)


def test_normalize_hex():
    assert normalize_hex("FFaa00") == "#ffaa00"
    assert normalize_hex(" #00FF00 ") == "#00ff00"
    for bad in ("#fff", "red", "#gggggg", 12):
        with pytest.raises(InputError):
            normalize_hex(bad)


def test_snap_picks_nearest_by_ciede2000():
    palette = ["#ff0000", "#00ff00", "#0000ff", "#ffffff"]
    pal = hex_to_lab(palette)
    probes = hex_to_lab(["#ee1111", "#11dd22", "#2200cc", "#f0f0f0", "#ff0000"])
    assert snap_lab_to_palette(probes, pal).tolist() == [0, 1, 2, 3, 0]


def test_snap_own_lightness_compares_hue_and_chroma_at_the_pixels_l():
    pal = hex_to_lab(["#400000", "#a0ffa0"])  # dark red, light green
    # a light, reddish pixel: by full Lab it is nearer the light green (L dominates),
    # at its own L only hue/chroma count and red wins
    probe = np.array([[85.0, 30.0, 15.0]], np.float32)
    assert snap_lab_to_palette(probe, pal)[0] == 1
    assert snap_lab_to_palette(probe, pal, own_lightness=True)[0] == 0


def test_snap_chunks_large_inputs(monkeypatch):
    import inkhue_engine.palette as pm

    monkeypatch.setattr(pm, "_SNAP_CHUNK_PAIRS", 7)
    pal = hex_to_lab(["#000000", "#ffffff"])
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, 50).astype(np.float32)
    lab = np.stack([L, np.zeros_like(L), np.zeros_like(L)], 1)
    assert (snap_lab_to_palette(lab, pal) == (L > 50)).all()


def test_palette_length_is_bounded(tmp_path):
    from inkhue_engine.palette import MAX_PALETTE_COLORS
    from inkhue_engine.pipeline import ColorizeOptions

    colors = [f"#{i:06x}" for i in range(MAX_PALETTE_COLORS + 1)]
    with pytest.raises(InputError, match=f"{MAX_PALETTE_COLORS + 1} colors is over the limit"):
        ColorizeOptions(palette=tuple(colors))
    assert len(ColorizeOptions(palette=tuple(colors[:-1])).palette) == MAX_PALETTE_COLORS
    gpl = tmp_path / "big.gpl"
    gpl.write_text(
        "GIMP Palette\n"
        + "".join(
            f"{int(c[1:3], 16)} {int(c[3:5], 16)} {int(c[5:], 16)} c{i}\n"
            for i, c in enumerate(colors)
        )
    )
    with pytest.raises(InputError, match="big.gpl: 257 colors"):
        load_palette(gpl)


def test_snap_regions_one_index_per_region_and_hints_win():
    pal = hex_to_lab(["#d02020", "#2040d0", "#ffffff"])
    region_lab = np.array([[10, 0, 0], [50, 30, 20], [50, 5, -30], [98, 1, 1]], np.float32)
    assert snap_regions_to_palette(region_lab, pal).tolist()[1:] == [0, 1, 2]
    hinted = np.array([False, True, False, False])
    hint_ab = np.zeros((4, 2), np.float32)
    hint_ab[1] = (10, -40)  # region 1 predicted red, hinted blue
    got = snap_regions_to_palette(region_lab, pal, region_hint_ab=hint_ab, region_hinted=hinted)
    assert got.tolist()[1:] == [1, 1, 2]
    assert region_lab[1, 1] == 30  # the caller's array is not changed
    # own lightness: a light, reddish region is red by hue even though white is nearer in L
    light = np.array([[85.0, 25.0, 12.0]], np.float32)
    assert snap_regions_to_palette(light, pal[[0, 2]]).tolist() == [1]
    assert snap_regions_to_palette(light, pal[[0, 2]], own_lightness=True).tolist() == [0]
