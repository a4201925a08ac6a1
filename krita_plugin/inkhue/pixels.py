"""Raw frame bytes as the engine's HTTP API describes them, with small pure helpers.

Stdlib + Qt only (the plugin runs in Krita's Python, which has no numpy). A frame is
tightly packed, row-major, little-endian pixels; its ``FrameLayout`` travels beside it
as query parameters (docs/HTTP_API.md, "Pixel layout"). Krita's ``pixelData`` is
BGRA for U8/U16 RGBA layers and RGBA for F16/F32 ones (Krita's pixel traits;
measured with ``node.channels()`` in Krita 5.1.5), little-endian on every platform Krita
ships for.

The helpers here never guess a bit depth from values: the depth is always given.
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from dataclasses import dataclass

#: Bytes per channel of each wire depth.
DEPTH_BYTES = {"u8": 1, "u16": 2, "f16": 2, "f32": 4}
#: Krita's colorDepth() names -> wire depths.
KRITA_DEPTHS = {"U8": "u8", "U16": "u16", "F16": "f16", "F32": "f32"}
#: Full-scale value of each depth (alpha 1.0).
_FULL = {"u8": 255, "u16": 65535, "f16": 1.0, "f32": 1.0}

if sys.byteorder != "little":  # pragma: no cover - Krita ships only for little-endian CPUs
    raise ImportError("InkHue's plugin expects a little-endian CPU (as Krita's pixel data)")


def krita_rgba_order(depth: str) -> str:
    """Byte order of Krita's RGBA pixels at a wire depth: ``bgra`` (u8, u16) or ``rgba``."""
    return "bgra" if depth in ("u8", "u16") else "rgba"


@dataclass(frozen=True)
class FrameLayout:
    """How the bytes of one frame are laid out (the API's query parameters)."""

    width: int
    height: int
    channels: int
    depth: str
    order: str = "rgba"

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * DEPTH_BYTES[self.depth]

    @property
    def nbytes(self) -> int:
        return self.width * self.height * self.bytes_per_pixel

    def query(self) -> dict[str, str]:
        """The layout as the API's query parameters."""
        return {
            "width": str(self.width),
            "height": str(self.height),
            "channels": str(self.channels),
            "depth": self.depth,
            "order": self.order,
        }

    def result(self) -> FrameLayout:
        """Layout of the engine's answer: same size/depth/order, 3 or 4 channels."""
        return FrameLayout(
            self.width, self.height, 4 if self.channels in (2, 4) else 3, self.depth, self.order
        )

    def describe(self) -> str:
        return f"{self.width}x{self.height}, {self.channels} channels, {self.depth}, {self.order}"


def _decode(data: bytes, depth: str) -> list:
    """Channel values of ``data`` as Python numbers (ints for u8/u16, floats otherwise)."""
    if depth == "u8":
        return list(data)
    if depth == "u16":
        return array("H", data).tolist()
    if depth == "f32":
        return array("f", data).tolist()
    return list(struct.unpack(f"<{len(data) // 2}e", data))


def _encode(values: list, depth: str) -> bytes:
    if depth == "u8":
        return bytes(values)
    if depth == "u16":
        return array("H", values).tobytes()
    if depth == "f32":
        return array("f", values).tobytes()
    return struct.pack(f"<{len(values)}e", *values)


def _check(data: bytes, layout: FrameLayout) -> None:
    if len(data) != layout.nbytes:
        raise ValueError(
            f"frame has {len(data)} bytes, expected {layout.nbytes} for {layout.describe()}"
        )


def flatten_on_white(data: bytes, layout: FrameLayout) -> bytes:
    """Composite a frame with alpha (2 or 4 channels, alpha last) over white, alpha made opaque.

    Line art on a transparent layer means "lines on paper": the engine must see white
    paper, and the colour layer it gives back must be opaque. Channel order does not
    matter (white is the same in every channel). U8 RGBA uses QPainter (fast, C++);
    other layouts a pure-Python loop (seconds for a 1080p frame).
    """
    _check(data, layout)
    if layout.channels not in (2, 4):
        return bytes(data)
    if layout.depth == "u8" and layout.channels == 4:
        return _flatten_u8_qt(data, layout)
    return flatten_on_white_py(data, layout)


def flatten_on_white_py(data: bytes, layout: FrameLayout) -> bytes:
    """Pure-Python ``flatten_on_white`` (any depth), rounding to nearest for integers."""
    _check(data, layout)
    n = layout.channels
    full = _FULL[layout.depth]
    values = _decode(data, layout.depth)
    integer = layout.depth in ("u8", "u16")
    for i in range(n - 1, len(values), n):
        a = values[i]
        if a == full:
            continue
        for c in range(i - n + 1, i):
            v = values[c] * a + full * (full - a)
            values[c] = (v + full // 2) // full if integer else v / full
        values[i] = full
    return _encode(values, layout.depth)


def _flatten_u8_qt(data: bytes, layout: FrameLayout) -> bytes:
    from .qt import QtCore, QtGui

    fmt = QtGui.QImage.Format.Format_RGBA8888
    src = QtGui.QImage(data, layout.width, layout.height, layout.width * 4, fmt)
    out = QtGui.QImage(layout.width, layout.height, fmt)
    out.fill(QtGui.QColor(255, 255, 255, 255))
    painter = QtGui.QPainter(out)
    painter.setCompositionMode(QtGui.QPainter.CompositionMode.CompositionMode_SourceOver)
    painter.drawImage(QtCore.QPoint(0, 0), src)
    painter.end()
    return _image_bytes(out, layout.width * 4, layout.height)


def _image_bytes(image, row_bytes: int, height: int) -> bytes:
    """Tightly packed bytes of a QImage (rows may be padded; works on every binding)."""
    stride = image.bytesPerLine()
    bits = image.constBits()
    if hasattr(bits, "setsize"):  # PyQt: a sip.voidptr
        bits.setsize(stride * height)
    raw = bytes(bits)[: stride * height]
    if stride == row_bytes:
        return raw
    return b"".join(raw[y * stride : y * stride + row_bytes] for y in range(height))


def clear_unselected(data: bytes, layout: FrameLayout, mask: bytes, threshold: int = 128) -> bytes:
    """Zero every pixel whose selection ``mask`` byte (one per pixel) is below ``threshold``.

    All-zero pixels are fully transparent at every depth, so the result shows only
    inside the selection (a feathered edge is cut at half strength).
    """
    _check(data, layout)
    if len(mask) != layout.width * layout.height:
        raise ValueError(f"selection mask has {len(mask)} bytes, expected one per pixel")
    bpp = layout.bytes_per_pixel
    out = bytearray(data)
    # Runs of unselected pixels found by the regex engine (C speed, no per-pixel loop).
    if not 1 <= threshold <= 255:
        raise ValueError(f"threshold must be 1..255, got {threshold}")
    low = re.compile(b"[\\x00-" + re.escape(bytes([threshold - 1])) + b"]+")
    for run in low.finditer(mask):
        start, end = run.start() * bpp, run.end() * bpp
        out[start:end] = bytes(end - start)
    return bytes(out)


def to_rgba8(data: bytes, layout: FrameLayout, order: str) -> bytes:
    """A 4-channel frame (any depth, ``layout.order``) as RGBA u8 bytes in ``order``.

    Used for hint layers: the API takes hints as u8 whatever the frame's depth.
    Integers keep their top bits (u16 -> high byte); floats are clipped to [0, 1].
    """
    _check(data, layout)
    if layout.channels != 4:
        raise ValueError("hints need 4 channels (colour + alpha)")
    if layout.depth == "u8":
        out = bytearray(data)
    elif layout.depth == "u16":
        out = bytearray(data[1::2])  # little-endian: every second byte is the high one
    else:
        values = _decode(data, layout.depth)
        out = bytearray(
            0 if not v > 0.0 else 255 if v >= 1.0 else int(v * 255.0 + 0.5) for v in values
        )
    if layout.order != order:
        out[0::4], out[2::4] = out[2::4], out[0::4]
    return bytes(out)


def is_linear_profile(profile: str) -> bool:
    """Whether a Krita colour profile stores linear light (Krita's float default, "g10")."""
    name = (profile or "").lower()
    return "g10" in name or "linear" in name


def _srgb_encode(v: float) -> float:
    """Linear light 0..1 -> sRGB-encoded 0..1 (the sRGB transfer curve)."""
    return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1.0 / 2.4) - 0.055


def _srgb_decode(v: float) -> float:
    """sRGB-encoded 0..1 -> linear light 0..1."""
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_CURVE_LUTS: dict[tuple[str, bool], object] = {}


def _curve_lut(depth: str, to_srgb: bool):
    """A table from an integer code (u8: 0..255, else 0..65535) to the curve's output in
    ``depth``'s own units (ints for u8/u16, floats 0..1 for f16/f32)."""
    key = (depth, to_srgb)
    if key not in _CURVE_LUTS:
        curve = _srgb_encode if to_srgb else _srgb_decode
        if depth == "u8":
            _CURVE_LUTS[key] = bytes(int(curve(i / 255.0) * 255.0 + 0.5) for i in range(256))
        elif depth == "u16":
            _CURVE_LUTS[key] = array(
                "H", (int(curve(i / 65535.0) * 65535.0 + 0.5) for i in range(65536))
            )
        else:
            _CURVE_LUTS[key] = [curve(i / 65535.0) for i in range(65536)]
    return _CURVE_LUTS[key]


def transfer_curve(data: bytes, layout: FrameLayout, to_srgb: bool) -> bytes:
    """The colour channels of a frame through the sRGB curve; alpha unchanged.

    ``to_srgb``: linear light -> sRGB-encoded (what the engine reads), else back. Krita's
    default profile for 16-bit integer and float RGB/gray is linear ("g10"); the engine
    reads and writes sRGB-encoded values, as in 8-bit. Integers go through an exact table
    (round to nearest); floats are clipped to 0..1 and looked up at 16-bit steps (the
    pipeline clips floats to 0..1 too).
    """
    _check(data, layout)
    n = layout.channels
    colour = range(n - 1) if n in (2, 4) else range(n)
    lut = _curve_lut(layout.depth, to_srgb)
    if layout.depth == "u8":
        out = bytearray(data.translate(lut))
        if n in (2, 4):
            out[n - 1 :: n] = data[n - 1 :: n]  # alpha stays
        return bytes(out)
    if layout.depth == "u16":
        values = array("H", data)
        for c in colour:
            values[c::n] = array("H", map(lut.__getitem__, values[c::n]))
        return values.tobytes()

    def look(v: float) -> float:
        return lut[0 if not v > 0.0 else 65535 if v >= 1.0 else int(v * 65535.0 + 0.5)]

    values = _decode(data, layout.depth)
    for c in colour:
        values[c::n] = [look(v) for v in values[c::n]]
    return _encode(values, layout.depth)


_SRGB_LUT16: bytes | None = None


def _srgb_lut16() -> bytes:
    """65536 entries: a 16-bit linear value -> its sRGB-encoded u8 value."""
    global _SRGB_LUT16
    if _SRGB_LUT16 is None:
        _SRGB_LUT16 = bytes(int(_srgb_encode(i / 65535.0) * 255.0 + 0.5) for i in range(65536))
    return _SRGB_LUT16


def to_srgb_rgba8(data: bytes, layout: FrameLayout, linear: bool) -> bytes:
    """A 4-channel frame (any depth, ``layout.order``) as sRGB-encoded RGBA u8 in rgba order.

    ``linear``: the values are linear light (a "g10" profile, Krita's default for 16-bit
    and float RGB): colour channels go through the sRGB curve (via 16-bit steps), alpha
    stays linear. Otherwise this is ``to_rgba8(data, layout, "rgba")``. Used for the
    coloured frames of a fine-tuning, which the training reads as sRGB PNG files.
    """
    if not linear:
        return to_rgba8(data, layout, "rgba")
    _check(data, layout)
    if layout.channels != 4:
        raise ValueError("colour frames need 4 channels (colour + alpha)")
    lut = _srgb_lut16()
    if layout.depth == "u8":
        ints = array("H", (v * 257 for v in data))
        alpha = bytes(data[3::4])
    elif layout.depth == "u16":
        ints = array("H", data)
        alpha = bytes(data[7::8])  # little-endian high bytes, as to_rgba8
    else:
        values = _decode(data, layout.depth)
        ints = array(
            "H",
            (0 if not v > 0.0 else 65535 if v >= 1.0 else int(v * 65535.0 + 0.5) for v in values),
        )
        alpha = bytes(
            0 if not v > 0.0 else 255 if v >= 1.0 else int(v * 255.0 + 0.5) for v in values[3::4]
        )
    out = bytearray(len(ints))
    red, blue = (2, 0) if layout.order == "bgra" else (0, 2)
    out[0::4] = bytes(map(lut.__getitem__, ints[red::4]))
    out[1::4] = bytes(map(lut.__getitem__, ints[1::4]))
    out[2::4] = bytes(map(lut.__getitem__, ints[blue::4]))
    out[3::4] = alpha
    return bytes(out)


def encode_png(rgba: bytes, width: int, height: int) -> bytes:
    """PNG file bytes of an RGBA u8 frame (rgba order, non-premultiplied), encoded by Qt."""
    from .qt import QtCore, QtGui, to_bytes

    if len(rgba) != width * height * 4:
        raise ValueError(
            f"frame has {len(rgba)} bytes, expected {width * height * 4} for "
            f"{width}x{height} RGBA u8"
        )
    data = bytes(rgba)  # the QImage reads this buffer until save() returns
    image = QtGui.QImage(data, width, height, width * 4, QtGui.QImage.Format.Format_RGBA8888)
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise ValueError(f"Qt could not encode a {width}x{height} PNG")
    buffer.close()
    return to_bytes(buffer.data())
