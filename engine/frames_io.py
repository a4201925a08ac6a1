"""Frame I/O: image files, folders, globs and videos in; atomic image and video files out.

Images are numpy arrays in RGB(A) order (HxW for gray), dtype uint8 / uint16 / float32,
exactly as the rest of the engine expects them. OpenCV does the image codecs (it
round-trips 16-bit PNG, float32 TIFF and EXR exactly), PyAV the video codecs.

Every failure the user can cause raises an InkHue error with one line that names the
file and says what to do. Outputs are written to a temporary file in the destination
folder, fsynced and renamed, so an output file that exists is complete: that is what
lets an interrupted batch resume by skipping existing outputs.
"""

from __future__ import annotations

import glob
import io
import os
import re
import secrets
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

# OpenCV 4.x reads and writes EXR only when this is set before the codec is first used.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from inkhue_engine.color import from_float01, to_float01  # noqa: E402
from inkhue_engine.errors import InputError, OutputError  # noqa: E402

# OpenCV prints its own decoder errors to stderr; ours say the same in one line.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

#: Still-image extensions read as single frames (lower case, with the dot).
IMAGE_EXTS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".webp",
        ".exr",
        ".bmp",
        ".jp2",
        ".pnm",
        ".ppm",
        ".pgm",
    }
)
#: Extensions read and written as videos (frame sequences inside one file).
VIDEO_EXTS = frozenset(
    {
        ".mp4",
        ".mov",
        ".mkv",
        ".avi",
        ".webm",
        ".gif",
        ".m4v",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".ogv",
    }
)
#: Image formats that can be written, and the pixel types each of them stores.
WRITE_DTYPES: dict[str, tuple[type, ...]] = {
    ".png": (np.uint8, np.uint16),
    ".tif": (np.uint8, np.uint16, np.float32),
    ".tiff": (np.uint8, np.uint16, np.float32),
    ".exr": (np.float32,),
    ".jpg": (np.uint8,),
    ".jpeg": (np.uint8,),
    ".webp": (np.uint8,),
    ".bmp": (np.uint8,),
}
#: Formats whose decoded pixels differ from the encoded ones.
LOSSY_EXTS = frozenset({".jpg", ".jpeg"})
#: Formats that cannot hold an alpha channel (alpha is dropped when writing them).
NO_ALPHA_EXTS = frozenset({".jpg", ".jpeg"})
#: Temporary files of atomic writes end with this (before a video's own extension).
TEMP_MARK = ".inkhue-tmp"
#: Largest frame (width x height) read by default, the server's limit too: a 20000 x 20000
#: frame took 14.7 GB on its way through the pipeline. ``--max-pixels`` raises it.
DEFAULT_MAX_PIXELS = 8192 * 8192
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_GLOB_CHARS = re.compile(r"[*?\[]")


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Source:
    """One input of a run: an image file (one frame) or a video file (many frames)."""

    path: Path
    kind: str  # "image" | "video"

    @property
    def is_video(self) -> bool:
        return self.kind == "video"


def natural_key(text: str) -> list[object]:
    """Sort key that orders numbers by value: 'frame2' before 'frame10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True when the path's extension is a video container's."""
    return Path(path).suffix.lower() in VIDEO_EXTS


def _source(path: Path) -> Source:
    return Source(path, "video" if is_video_path(path) else "image")


def _folder_frames(folder: Path) -> list[Path]:
    """A folder's image files, naturally sorted; its videos only when it has no images
    (a preview.mp4 next to the frames is not part of the sequence)."""
    # Hidden files are skipped: they include other tools' and our own temp files.
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    chosen = images or [p for p in files if p.suffix.lower() in VIDEO_EXTS]
    return sorted(chosen, key=lambda p: natural_key(p.name))


def expand_inputs(args: Iterable[str | os.PathLike[str]]) -> list[Source]:
    """Expand command-line inputs into sources, in order.

    Each argument may be an image file, a video file (by extension), a folder (its
    image files, naturally sorted: frame2 before frame10; its videos when it holds no
    images) or a glob pattern
    (naturally sorted). A path that does not exist, a glob that matches nothing or a
    folder without images raises InputError. The same file given twice is kept once.
    """
    sources: list[Source] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            sources.append(_source(path))

    for arg in args:
        text = os.fspath(arg)
        path = Path(text)
        if path.is_dir():
            frames = _folder_frames(path)
            if not frames:
                raise InputError(
                    f"{text}: the folder holds no image or video files "
                    f"({', '.join(sorted(IMAGE_EXTS))}, ...)"
                )
            for p in frames:
                add(p)
        elif path.is_file():
            add(path)
        elif _GLOB_CHARS.search(text):
            matches = [Path(m) for m in glob.glob(text) if Path(m).is_file()]
            if not matches:
                raise InputError(f"{text}: the pattern matches no file")
            for p in sorted(matches, key=lambda p: natural_key(str(p))):
                add(p)
        elif path.exists():
            raise InputError(f"{text}: not a file or folder")
        else:
            raise InputError(f"{text}: no such file or folder")
    if not sources:
        raise InputError("no input given: name image files, folders, globs or videos")
    return sources


# --------------------------------------------------------------------------- images
def _read_bytes(path: Path) -> np.ndarray:
    try:
        # np.fromfile + imdecode instead of imread: imread fails on non-ASCII paths on Windows.
        return np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _tiff_samples(data: np.ndarray) -> int | None:
    """Samples per pixel of a TIFF's first page (None when not a TIFF or unreadable)."""
    if data[:2].tobytes() not in (b"II", b"MM"):
        return None
    import io

    import tifffile  # a dependency of scikit-image; imported only for TIFFs

    try:
        with tifffile.TiffFile(io.BytesIO(data.tobytes())) as tif:
            return int(tif.pages[0].samplesperpixel)
    except Exception:  # an unreadable header: OpenCV's verdict on the data stands
        return None


def _holds_several_frames(data: np.ndarray) -> bool:
    """Whether an encoded image is an animated PNG / WebP or a multi-page TIFF, of which
    OpenCV decodes only the first frame."""
    raw = data[:65536].tobytes()
    if raw.startswith(_PNG_SIGNATURE):
        pos = raw.find(b"acTL")  # APNG: the animation chunk comes before the first IDAT
        idat = raw.find(b"IDAT")
        if 0 < pos and (idat < 0 or pos < idat) and len(raw) >= pos + 8:
            return int.from_bytes(raw[pos + 4 : pos + 8], "big") > 1
        return False
    if raw[:4] == b"RIFF" and raw[8:16] == b"WEBPVP8X" and len(raw) > 20:
        return bool(raw[20] & 0x02)  # the VP8X header's animation flag
    if raw[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import tifffile

        try:
            with tifffile.TiffFile(io.BytesIO(data.tobytes())) as tif:
                # reduced-resolution pages are previews of the first, not frames
                return sum(1 for page in tif.pages if not page.is_reduced) > 1
        except (tifffile.TiffFileError, ValueError, OSError):
            return False  # OpenCV, which decodes it, reports what is wrong
    return False


def _check_png(data: memoryview, name: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of a PNG whose chunk structure is whole; InputError otherwise.

    libpng prints its own lines to stderr for a truncated file or a 0 x 0 header before
    OpenCV gives up: the structure is checked here first (lengths, CRCs, IHDR first,
    IEND last), so the user reads one line that says what is wrong.
    """
    pos, first, size = len(_PNG_SIGNATURE), True, (0, 0)
    again = "export the frame again"
    while True:
        if pos + 12 > len(data):
            raise InputError(
                f"{name}: the PNG file is truncated (no IEND chunk at its end): {again}"
            )
        length = int.from_bytes(data[pos : pos + 4], "big")
        tag = bytes(data[pos + 4 : pos + 8]).decode("latin-1")
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise InputError(
                f"{name}: the PNG file is truncated (its {tag} chunk is cut off): {again}"
            )
        if zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            raise InputError(
                f"{name}: the PNG file is damaged (the checksum of its {tag} chunk is wrong): "
                f"{again}"
            )
        if first:
            if tag != "IHDR" or length != 13:
                raise InputError(
                    f"{name}: not a valid PNG file (it does not start with a header chunk): {again}"
                )
            size = (
                int.from_bytes(data[pos + 8 : pos + 12], "big"),
                int.from_bytes(data[pos + 12 : pos + 16], "big"),
            )
            if size[0] == 0 or size[1] == 0:
                raise InputError(
                    f"{name}: the PNG file says its frame is {size[0]} x {size[1]} pixels: {again}"
                )
            first = False
        if tag == "IEND":
            return size
        pos = end


#: Start-of-frame markers of a JPEG (they hold its size); C4, C8 and CC are other segments.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, None when not found."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # no length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_FRAME_MARKERS:
            h = int.from_bytes(data[pos + 5 : pos + 7], "big")
            w = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return w, h
        pos += 2 + length
    return None


def check_pixels(width: int, height: int, max_pixels: int | None, name: object) -> None:
    """InputError when a ``width`` x ``height`` frame is over ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(
            f"{name}: {width} x {height} = {width * height} pixels is over the limit of "
            f"{max_pixels} pixels: scale the frame down, or raise the limit (--max-pixels)"
        )


def decode_image(
    data: np.ndarray, name: str | os.PathLike[str] = "image", max_pixels: int | None = None
) -> np.ndarray:
    """Decode an encoded image (bytes as a uint8 array) to RGB(A) / gray, dtype kept.

    uint8, uint16 and float32 are kept; float16 / float64 become float32. Anything
    else (signed integers, 2 or 5+ channels, undecodable data) raises InputError
    naming ``name``. A frame over ``max_pixels`` (width x height; None: no limit) is
    refused, before decoding for PNG and JPEG (their headers give the size).
    """
    if data.size == 0:
        raise InputError(f"{name}: the file is empty: export the frame again")
    raw = data[:65536].tobytes()
    size = None
    if raw.startswith(_PNG_SIGNATURE):
        size = _check_png(memoryview(np.ascontiguousarray(data)).cast("B"), name)
    elif raw.startswith(b"\xff\xd8"):
        size = _jpeg_size(raw) if max_pixels is not None else None
    if size is not None:
        check_pixels(*size, max_pixels, name)
    if _holds_several_frames(data):
        # OpenCV decodes the first frame only: the others would be dropped without a word
        raise InputError(
            f"{name}: holds more than one frame (an animation or a multi-page file), of "
            "which only the first would be colorized: export the frames as separate "
            "images, or as a video"
        )
    # IMREAD_UNCHANGED ignores EXIF orientation: a phone photo would come out turned. A
    # JPEG has no alpha and no 16-bit, so ANYCOLOR | ANYDEPTH loses nothing and rotates it.
    flags = (
        cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
        if raw.startswith(b"\xff\xd8")
        else cv2.IMREAD_UNCHANGED
    )
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error:
        img = None
    if img is None:
        raise InputError(
            f"{name}: not a readable image (corrupt, truncated or an unsupported format): "
            "re-export it as PNG, TIFF, JPEG, WebP or EXR"
        )
    check_pixels(img.shape[1], img.shape[0], max_pixels, name)
    if img.dtype in (np.float16, np.float64):
        img = img.astype(np.float32)
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise InputError(
            f"{name}: unsupported pixel type {img.dtype}: "
            "save it as 8 or 16-bit unsigned integer or 32-bit float"
        )
    channels = 1 if img.ndim == 2 else img.shape[2]
    samples = _tiff_samples(data)
    if samples is not None and samples not in (1, 3, 4) and samples != channels:
        # OpenCV silently keeps one channel of a gray+alpha TIFF: refuse rather than lose alpha.
        raise InputError(
            f"{name}: a TIFF with {samples} channels per pixel is not supported: "
            "save it as gray, RGB or RGBA"
        )
    if channels == 1:
        return img if img.ndim == 2 else img[..., 0]
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    raise InputError(
        f"{name}: {channels} channels per pixel are not supported: save it as gray, RGB or RGBA"
    )


def read_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as RGB(A) or gray, dtype preserved (uint8 / uint16 / float32).

    float16 / float64 (EXR, TIFF) become float32. Empty, corrupt or unsupported
    files, and frames over ``max_pixels`` (None: no limit), raise InputError with one
    line naming the file.
    """
    path = Path(path)
    return decode_image(_read_bytes(path), path, max_pixels)


def image_size(path: str | os.PathLike[str], max_pixels: int | None = None) -> tuple[int, int]:
    """(height, width) of an image file as read_image gives it: a PNG's from its header
    (checked whole), any other by decoding it (a JPEG may turn by its EXIF orientation)."""
    path = Path(path)
    data = _read_bytes(path)
    if data[:8].tobytes() == _PNG_SIGNATURE:
        w, h = _check_png(memoryview(np.ascontiguousarray(data)).cast("B"), path)
        check_pixels(w, h, max_pixels, path)
        return h, w
    return decode_image(data, path, max_pixels).shape[:2]


def conform_for_format(img: np.ndarray, suffix: str) -> np.ndarray:
    """The array that a file with extension ``suffix`` stores for ``img``.

    Keeps the dtype when the format can hold it, otherwise converts by the scale of
    the dtype (float32 -> uint16 in PNG, anything -> float32 in EXR, -> uint8 in
    JPEG/WebP/BMP); JPEG drops alpha. Raises OutputError for an unknown extension.
    """
    suffix = suffix.lower()
    allowed = WRITE_DTYPES.get(suffix)
    if allowed is None:
        raise OutputError(
            f"cannot write '{suffix or '(no extension)'}' images: use one of "
            f"{', '.join(sorted(WRITE_DTYPES))}"
        )
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise OutputError(f"cannot write pixel type {img.dtype}: use uint8, uint16 or float32")
    if img.dtype not in allowed:
        target = np.uint16 if np.uint16 in allowed and img.dtype == np.float32 else allowed[0]
        img = from_float01(to_float01(img), target)
    if suffix in NO_ALPHA_EXTS and img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    return img


def encode_image(img: np.ndarray, suffix: str) -> bytes:
    """Encode an RGB(A) / gray image to the bytes of a ``suffix`` file (e.g. '.png')."""
    img = conform_for_format(img, suffix)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    elif img.ndim != 2:
        raise OutputError(f"cannot write an image of shape {img.shape}: use gray, RGB or RGBA")
    params: list[int] = []
    if suffix.lower() == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # above 100 means lossless
    elif suffix.lower() in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    try:
        ok, buf = cv2.imencode(suffix.lower(), np.ascontiguousarray(img), params)
    except cv2.error as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise OutputError(f"cannot encode a {suffix} image: {detail}") from None
    if not ok:
        raise OutputError(f"cannot encode a {suffix} image")
    return buf.tobytes()


def stored_pixels(img: np.ndarray, suffix: str) -> np.ndarray:
    """What reading back a ``suffix`` file written from ``img`` gives (exactly)."""
    if suffix.lower() in LOSSY_EXTS:
        return decode_image(np.frombuffer(encode_image(img, suffix), np.uint8))
    return conform_for_format(img, suffix)


class InputSet:
    """The run's input files, to refuse any output that would overwrite one of them.

    Paths are compared after resolving links, and by device and inode (hard links,
    case-insensitive file systems). Checking a path costs one lookup.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self._paths: dict[Path, Path] = {}
        self._ids: dict[tuple[int, int], Path] = {}
        for p in paths:
            p = Path(p)
            self._paths[p.resolve()] = p
            try:
                st = p.stat()
            except OSError:
                continue
            self._ids[(st.st_dev, st.st_ino)] = p

    def check(self, path: str | os.PathLike[str]) -> None:
        """Raise OutputError when ``path`` is (or links to) one of the inputs."""
        path = Path(path)
        src = self._paths.get(path.resolve())
        if src is None and self._ids:
            try:
                st = path.stat()
                src = self._ids.get((st.st_dev, st.st_ino))
            except OSError:
                src = None
        if src is not None:
            raise OutputError(
                f"{path}: the output would overwrite the input {src}: choose another output"
            )


def check_not_input(
    path: str | os.PathLike[str], inputs: InputSet | Iterable[str | os.PathLike[str]]
) -> None:
    """Raise OutputError when ``path`` is (or links to) one of ``inputs``."""
    (inputs if isinstance(inputs, InputSet) else InputSet(inputs)).check(path)


def temp_path_for(path: Path) -> Path:
    """A fresh temporary file next to ``path`` (hidden; video temps keep the extension).

    Created with the usual permissions (0666 less the umask), unlike mkstemp's 0600,
    because it becomes the output file.
    """
    suffix = TEMP_MARK + (path.suffix if is_video_path(path) else "")
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name next to {path}")


def stale_temps(path: Path) -> list[Path]:
    """Temporary files that an interrupted atomic write of ``path`` left behind."""
    folder = path.parent
    if not folder.is_dir():
        return []
    prefix = f".{path.name}."
    return [
        p
        for p in folder.iterdir()
        if p.name.startswith(prefix) and TEMP_MARK in p.name[len(prefix) :]
    ]


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, exclusive: bool = False) -> None:
    """Write ``data`` to ``path``: temp file in the same folder, fsync, rename.

    The file either appears complete or not at all; a failure leaves no temp file.
    ``exclusive``: never replace a file that exists by the time it lands (OutputError),
    even one another process wrote meanwhile (a hard link, which refuses an existing name).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: the folder {path.parent} does not exist: create it first")
    try:
        tmp = temp_path_for(path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"{path}: appeared while this was being made (another run of the same name?): "
            "choose another name, or allow overwriting"
        ) from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _link_new(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists (FileExistsError)."""
    try:
        os.link(tmp, path)  # refuses an existing name, atomically
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_image_atomic(
    path: str | os.PathLike[str],
    img: np.ndarray,
    inputs: InputSet | Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Encode ``img`` to ``path``'s format and write it atomically.

    Refuses (OutputError) to write over any of ``inputs`` (the run's input files).
    The pixel type is converted when the format cannot hold it (conform_for_format).
    """
    path = Path(path)
    check_not_input(path, inputs)
    write_bytes_atomic(path, encode_image(img, path.suffix))


# --------------------------------------------------------------------------- video
@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds: frame rate, size and (when the container says) frame count."""

    fps: Fraction
    width: int
    height: int
    frames: int  # 0 when the container does not say


def _open_video(path: Path):  # -> av.container.InputContainer
    import av

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty: export the video again")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: the file holds no video stream")
    return container


def video_info(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame rate, size and frame count of a video file (InputError when unreadable)."""
    path = Path(path)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(
            Fraction(rate),
            stream.codec_context.width,
            stream.codec_context.height,
            int(stream.frames or 0),
        )


def video_losses(path: str | os.PathLike[str]) -> list[str]:
    """What colorizing a video leaves behind: its audio (and subtitle) tracks, and the
    timing of a variable frame rate (outputs are written at one constant rate)."""
    path = Path(path)
    lost = []
    with _open_video(path) as container:
        others = [s.type for s in container.streams if s.type in ("audio", "subtitle")]
        if others:
            lost.append(f"its {' and '.join(sorted(set(others)))} track(s)")
        stream = container.streams.video[0]
        avg, guessed = stream.average_rate, stream.guessed_rate
        if avg and guessed and abs(float(avg) - float(guessed)) > 0.01 * float(guessed):
            lost.append(
                f"its variable frame timing (the output runs at a constant {float(avg):.3g} fps)"
            )
    return lost


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames read_video gives: the stream's packets that the decoder keeps,
    counted without decoding (a header's count includes frames that an edit list hides,
    e.g. in an MP4 cut with -c copy; decoding to count took 5 s per 120 1080p frames)."""
    import av

    path = Path(path)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for pkt in container.demux(stream) if pkt.size and not pkt.is_discard)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: the video is damaged ({exc.strerror or exc})") from None


def _has_alpha(pix_fmt: str | None) -> bool:
    import av

    try:
        return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except (TypeError, ValueError):
        return False


def read_video(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Decode a video's frames in order as uint8 RGB (RGBA when the stream has alpha)."""
    import av

    path = Path(path)
    with _open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fmt = "rgba" if _has_alpha(stream.codec_context.pix_fmt) else "rgb24"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format=fmt)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: the video is damaged ({exc.strerror or exc})") from None


def _video_codec(suffix: str) -> tuple[str, str, dict[str, str]]:
    """(codec, pixel format, options) for a container extension."""
    import av

    def have(name: str) -> bool:
        try:
            av.codec.Codec(name, "w")
            return True
        except (av.FFmpegError, ValueError):
            return False

    if suffix == ".gif":
        return "gif", "rgb8", {}
    if suffix == ".webm":
        return "libvpx-vp9", "yuv420p", {"crf": "30", "b": "0"}
    if suffix == ".ogv":  # Ogg holds Theora or VP8, not H.264
        if have("libtheora"):
            return "libtheora", "yuv420p", {"qscale": "8"}
        return "libvpx", "yuv420p", {"crf": "10", "b": "2M"}
    if have("libx264"):
        return "libx264", "yuv420p", {"crf": "17", "preset": "medium"}
    return "mpeg4", "yuv420p", {"qscale": "2"}


def video_frame(img: np.ndarray) -> np.ndarray:
    """A frame as a video stores it: uint8 RGB, even width and height (edge-padded)."""
    if img.dtype != np.uint8:
        img = from_float01(to_float01(img), np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    h, w = img.shape[:2]
    if h % 2 or w % 2:  # yuv420p needs even sizes: pad one edge row/column rather than crop
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(img)


class VideoWriter:
    """Write frames to a video file atomically (temp file, renamed on ``close``).

    H.264 (libx264, else MPEG-4 Part 2) in yuv420p for mp4/mov/mkv/avi, VP9 for
    webm, GIF for gif. Frames are converted with ``video_frame``; all must have the
    size of the first. ``abort`` (or leaving a ``with`` block by an exception)
    removes the temp file and leaves no output.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: Fraction | float,
        inputs: InputSet | Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        import av

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_EXTS:
            raise OutputError(f"{self.path}: not a video extension ({', '.join(VIDEO_EXTS)})")
        check_not_input(self.path, inputs)
        self.fps = Fraction(fps).limit_denominator(1001000)
        self._codec, self._pix_fmt, self._options = _video_codec(suffix)
        try:
            self._tmp = temp_path_for(self.path)
            self._container = av.open(str(self._tmp), mode="w")
        except (OSError, av.FFmpegError) as exc:
            raise OutputError(f"{self.path}: cannot write here ({exc})") from None
        self._stream = None
        self._count = 0
        self._size: tuple[int, int] | None = None

    def write(self, img: np.ndarray) -> None:
        """Append one frame (any engine image; see ``video_frame``)."""
        import av

        frame = video_frame(img)
        h, w = frame.shape[:2]
        if self._stream is None:
            self._size = (h, w)
            stream = self._container.add_stream(self._codec, rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = w, h, self._pix_fmt
            stream.codec_context.time_base = 1 / self.fps
            stream.options = dict(self._options)
            self._stream = stream
        elif (h, w) != self._size:
            raise OutputError(
                f"{self.path}: frame {self._count} is {w}x{h} but the video is "
                f"{self._size[1]}x{self._size[0]}: a video needs frames of one size"
            )
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = self._count
        vf.time_base = 1 / self.fps
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except av.FFmpegError as exc:
            self._failed(exc)
        self._count += 1

    def _failed(self, exc: Exception) -> None:
        self.abort()
        raise OutputError(
            f"{self.path}: the {self._codec} encoder or the {self.path.suffix} container "
            f"failed ({exc}): choose another video format (.mp4, .mkv, .webm)"
        ) from None

    def close(self) -> None:
        """Flush the encoder and move the finished file into place."""
        import av

        if self._stream is None:
            self.abort()
            raise OutputError(f"{self.path}: no frames to write")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except av.FFmpegError as exc:
            self._failed(exc)
        with open(self._tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Drop everything written so far (no output, no temp file)."""
        try:
            self._container.close()
        except Exception:  # closing a half-written container may fail; it is dropped anyway
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: Fraction | float,
    inputs: InputSet | Iterable[str | os.PathLike[str]] = (),
) -> int:
    """Write all ``frames`` to a video file atomically; returns the frame count."""
    with VideoWriter(path, fps, inputs) as writer:
        for img in frames:
            writer.write(img)
        return writer._count
