"""Raw frames on the wire of the HTTP API (docs/HTTP_API.md, "Pixel layout").

A frame travels as tightly packed, row-major, little-endian pixels; its layout
(width, height, channels, depth, order) travels beside it as query parameters or
in a job's description. This module turns such bytes into the arrays the
pipeline takes (RGB(A) order, uint8 / uint16 / float32) and pipeline results
back into bytes of the same depth and order. It also parses the colorize
options shared by ``POST /colorize`` and the jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from inkhue_engine.errors import InputError
from inkhue_engine.palette import check_palette_length, normalize_hex

Depth = Literal["u8", "u16", "f16", "f32"]
Order = Literal["rgba", "bgra"]

#: Little-endian wire type of each depth, and the dtype the pipeline gets for it
#: (the pipeline has no float16: half floats are widened to float32 and narrowed back).
WIRE_DTYPE: dict[str, np.dtype] = {
    "u8": np.dtype("<u1"),
    "u16": np.dtype("<u2"),
    "f16": np.dtype("<f2"),
    "f32": np.dtype("<f4"),
}
PIPELINE_DTYPE: dict[str, np.dtype] = {
    "u8": np.dtype(np.uint8),
    "u16": np.dtype(np.uint16),
    "f16": np.dtype(np.float32),
    "f32": np.dtype(np.float32),
}
#: Channel permutation between BGR(A) and RGB(A) (it is its own inverse).
_SWAP = {3: [2, 1, 0], 4: [2, 1, 0, 3]}


def _swap_rb(img: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A) as a new array (OpenCV's swizzle is ~10x numpy fancy indexing)."""
    if img.dtype in (np.uint8, np.uint16, np.float32):
        code = cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR
        return cv2.cvtColor(np.ascontiguousarray(img), code)
    return img[..., _SWAP[img.shape[2]]]


class TooLargeError(InputError):
    """A request body or frame is over the server's limits."""

    http_status = 413


@dataclass(frozen=True)
class PixelLayout:
    """How the bytes of one frame are laid out (see docs/HTTP_API.md)."""

    width: int
    height: int
    channels: int
    depth: Depth
    order: Order = "rgba"

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name}: must be a whole number >= 1, got {value!r}")
        if self.channels not in (1, 2, 3, 4):
            raise InputError(
                f"channels: must be 1 (gray), 2 (gray+alpha), 3 or 4, got {self.channels!r}"
            )
        if self.depth not in WIRE_DTYPE:
            raise InputError(f"depth: must be one of u8, u16, f16, f32, got {self.depth!r}")
        if self.order not in ("rgba", "bgra"):
            raise InputError(f"order: must be rgba or bgra, got {self.order!r}")

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def bytes_per_channel(self) -> int:
        return WIRE_DTYPE[self.depth].itemsize

    @property
    def nbytes(self) -> int:
        """Size in bytes of one input frame."""
        return self.pixels * self.channels * self.bytes_per_channel

    @property
    def out_channels(self) -> int:
        """Channels of a result: 3 for gray / RGB in, 4 when the input has alpha."""
        return 4 if self.channels in (2, 4) else 3

    @property
    def out_nbytes(self) -> int:
        """Size in bytes of one result frame."""
        return self.pixels * self.out_channels * self.bytes_per_channel

    def hints_layout(self) -> PixelLayout:
        """Layout of this frame's hint image: RGBA u8, same size and channel order."""
        return PixelLayout(self.width, self.height, 4, "u8", self.order)

    def check_pixels(self, max_pixels: int) -> None:
        """Refuse (413) a frame with more pixels than the server accepts."""
        if self.pixels > max_pixels:
            raise TooLargeError(
                f"width x height: {self.width} x {self.height} = {self.pixels} pixels is over "
                f"the server's limit of {max_pixels} pixels; colorize a smaller frame or crop"
            )

    def check_size(self, size: int, what: str = "frame") -> None:
        """Refuse (400) ``size`` bytes that do not match this layout, naming ``what``."""
        if size != self.nbytes:
            raise InputError(
                f"{what}: expected {self.nbytes} bytes (width {self.width} x height "
                f"{self.height} x channels {self.channels} x {self.bytes_per_channel} bytes "
                f"for depth {self.depth}), got {size}; check width, height, channels and depth"
            )

    def decode(self, data: bytes | bytearray | memoryview, what: str = "frame") -> np.ndarray:
        """Bytes -> HxW (1 channel) or HxWxC array in RGB(A) order, pipeline dtype.

        ``what`` names the part or body in the error for a wrong size. The result is
        a fresh, writable array (the bytes are never aliased).
        """
        self.check_size(memoryview(data).nbytes, what)
        wire = np.frombuffer(data, dtype=WIRE_DTYPE[self.depth]).reshape(
            self.height, self.width, self.channels
        )
        arr = wire.astype(PIPELINE_DTYPE[self.depth])  # always a native-endian copy
        if self.channels in _SWAP and self.order == "bgra":
            arr = _swap_rb(arr)
        return arr[..., 0] if self.channels == 1 else arr

    def encode(self, result: np.ndarray) -> bytes:
        """A pipeline result (HxWx3 / HxWx4 RGB(A)) -> bytes in this layout's depth and order."""
        expected = (self.height, self.width, self.out_channels)
        if result.shape != expected:
            raise RuntimeError(f"pipeline returned shape {result.shape}, expected {expected}")
        if self.order == "bgra":
            result = _swap_rb(result)
        return np.ascontiguousarray(result, dtype=WIRE_DTYPE[self.depth]).tobytes()

    def headers(self, model_name: str) -> dict[str, str]:
        """Response headers that describe a result frame in this layout."""
        return {
            "X-InkHue-Width": str(self.width),
            "X-InkHue-Height": str(self.height),
            "X-InkHue-Channels": str(self.out_channels),
            "X-InkHue-Depth": self.depth,
            "X-InkHue-Order": self.order,
            "X-InkHue-Model": model_name,
        }


def parse_palette(value: str | list[str] | None) -> tuple[str, ...] | None:
    """The ``palette`` option -> what ``ColorizeOptions.palette`` takes.

    None / absent: the model's own palette (if it has one). ``"none"``: no palette
    at all (an empty tuple). A JSON list (a string, as in a query) or a list of
    sRGB hex strings: that palette.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return ()
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(
                f'palette: expected a JSON list of hex colors like ["#ff0000"] or none, '
                f"got {value[:40]!r}"
            ) from None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise InputError('palette: expected a list of hex colors like ["#ff0000"] or none')
    check_palette_length(len(value), "palette")
    return tuple(normalize_hex(c) for c in value)
