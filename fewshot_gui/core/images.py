"""Find image files and open any of them safely as RGB images or uint8 arrays."""

import contextlib
import errno
import os
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

from fewshot_gui.core.errors import DataError, ImageLoadError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif"}
)

# Pillow's own warning threshold (~89 MP, ~270 MB as RGB): refusing more keeps one bad file
# from exhausting memory, while JPEGs count after draft scaling, so big photos still load.
DEFAULT_MAX_PIXELS: int = 89_478_485

# A header may claim far more pixels than the file's data can fill, and the decoder pads the
# rest instead of failing (libjpeg with gray, GIF with its background): a few KB then decode
# as a 65500 x 65500 image. Huffman coding spends at least 1 bit per 8x8 block (64 pixels)
# per scan, so no whole JPEG holds more than about 512 pixels per byte (blank ones measure
# 170 in colour, 255 in gray); one 12-bit LZW code stands for at most 4096 pixels, so no
# GIF frame more than 2731. Twice those bounds leave every real image alone
# (benchmarks/image_size_bound.py); PNG and the others raise on missing data by themselves.
MAX_PIXELS_PER_BYTE: dict[str, int] = {"JPEG": 1024, "GIF": 5462}

_HEIF_SUFFIXES = frozenset({".heic", ".heif"})
# Only these decoders may run, whatever the suffix says: no Ghostscript (EPS) or other
# rarely exercised parsers reachable from a renamed file.
_ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_JPEG_SIGNATURE = b"\xff\xd8\xff"
# What Pillow's own fuzz tests accept from corrupt input, minus MemoryError (a real shortage).
_CORRUPT_IMAGE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    NotImplementedError,
    OverflowError,
    struct.error,
)
_WHITE = (255, 255, 255)
_SIXTEEN_TO_EIGHT_BITS = np.rint(np.arange(65536) / 257).astype(np.uint8)
# catch_warnings swaps the process-wide filter list, so concurrent opens must not interleave.
_WARNINGS_LOCK = threading.Lock()

_DraftSize = Callable[[tuple[int, int]], tuple[int, int] | None]


def is_image_path(path: Path) -> bool:
    """Whether `path` names a visible file with an image suffix (any letter case)."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def iter_image_files(root: Path) -> Iterator[Path]:
    """Iterate over every image file under `root`, recursively, in a stable sorted order.

    Each folder's entries are visited sorted by name. Hidden files and folders (name starts
    with '.') and files without an image suffix are skipped silently, as are subfolders that
    cannot be listed. Folder symlinks are not followed, so link loops cannot recur; file
    symlinks are yielded unexamined, even when broken or looping, so that loading reports
    them per file.

    Raises:
        DataError: `root` is missing, not a folder or not readable (raised at the call).
    """
    try:
        entries = _sorted_entries(root)
    except FileNotFoundError:
        raise DataError(f"folder not found: {root}") from None
    except NotADirectoryError:
        raise DataError(f"not a folder: {root}") from None
    except OSError as exc:
        raise DataError(f"cannot read folder {root}: {exc.strerror}") from exc
    return _walk(entries)


def load_image(
    path: Path, *, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Open `path` as an upright RGB image.

    EXIF orientation is applied, transparency is flattened onto white, 16-bit, 32-bit and
    float images are scaled onto 0..255, and an animation yields its first frame.

    Args:
        path: the image file.
        min_side: the shorter side the caller needs; JPEGs may then decode at 1/2, 1/4 or
            1/8 scale, never below it. None decodes at full size.
        max_pixels: refuse images whose decoded width * height exceeds this; checked after
            draft scaling, so a huge JPEG can still load when `min_side` is small. Pillow's
            own ceiling (2 * Image.MAX_IMAGE_PIXELS) still applies to formats other than JPEG.

    Raises:
        ImageLoadError: the file is missing, unreadable, empty, not a supported image,
            truncated or corrupt, or too large.
    """
    if min_side is not None and min_side < 1:
        raise ValueError(f"min_side must be at least 1, got {min_side}")
    return _load(path, lambda _size: None if min_side is None else (min_side, min_side), max_pixels)


def load_rgb_array(path: Path, size: int) -> np.ndarray:
    """Load `path` as a centre-cropped `size` x `size` model input.

    Returns:
        uint8 array of shape (size, size, 3): the shorter side resized to `size`, the longer
        side cropped equally on both ends.
    """
    image = load_image(path, min_side=size)
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    # Resizing only the crop box skips the pixels the crop would throw away.
    square = image.resize(
        (size, size),
        Image.Resampling.BILINEAR,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )
    return np.array(square)


def thumbnail_array(path: Path, max_side: int) -> np.ndarray:
    """Load `path` shrunk to fit within `max_side` x `max_side`, keeping its aspect ratio.

    Images already small enough are returned at their own size, never enlarged.

    Returns:
        uint8 array of shape (height, width, 3) with max(height, width) <= max_side.
    """
    image = _load(path, lambda size: _fitted_size(size, max_side), DEFAULT_MAX_PIXELS)
    fitted = _fitted_size(image.size, max_side)
    if fitted != image.size:
        image = image.resize(fitted, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(image)


def image_identity(path: Path) -> tuple[str, int, int]:
    """Cache key of an image file: (resolved absolute path, size in bytes, mtime in ns).

    Raises:
        ImageLoadError: the file is gone or cannot be inspected.
    """
    try:
        status = os.stat(path)
    except OSError as exc:
        raise _load_error(path, _os_reason(path, exc)) from exc
    # realpath, unlike Path.resolve, never raises: a link loop made since the stat stays a path.
    return os.path.realpath(path), status.st_size, status.st_mtime_ns


def _sorted_entries(folder: str | Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _walk(entries: list[os.DirEntry[str]]) -> Iterator[Path]:
    # An explicit stack: arbitrarily deep folders cannot hit the recursion limit.
    stack = [iter(entries)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            # One unreadable folder (lost+found, System Volume Information) must not hide the rest.
            with contextlib.suppress(OSError):
                stack.append(iter(_sorted_entries(entry.path)))
        elif is_image_path(Path(entry.name)) and _may_be_file(entry):
            yield Path(entry.path)


def _may_be_file(entry: os.DirEntry[str]) -> bool:
    """A file, a file symlink (broken or looping too), or an entry that cannot be inspected
    (is_file follows links and raises ELOOP): loading tells which, per file."""
    try:
        return entry.is_symlink() or entry.is_file()
    except OSError:
        return True


def _fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _load(path: Path, draft_size: _DraftSize, max_pixels: int) -> Image.Image:
    if path.suffix.lower() in _HEIF_SUFFIXES:
        _require_heif_opener(path)
    with _open_regular_file(path) as file:
        try:
            image = _open_image(file)
            full_width, full_height = image.size
            _check_holds_its_pixels(path, image, os.fstat(file.fileno()).st_size)
            request = draft_size(image.size)
            if request is not None:
                image.draft("RGB", request)
            if image.width * image.height > max_pixels:
                megapixels = round(full_width * full_height / 1e6)
                raise _load_error(path, f"image too large ({megapixels} megapixels)")
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return _to_rgb(image)
        except Image.UnidentifiedImageError:
            raise _load_error(path, "not a supported image file") from None
        except Image.DecompressionBombError as exc:
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) // 1_000_000
            raise _load_error(path, f"image too large (over {limit} megapixels)") from exc
        except _CORRUPT_IMAGE_ERRORS as exc:
            raise _load_error(path, "truncated or corrupt image") from exc


def _check_holds_its_pixels(path: Path, image: Image.Image, file_bytes: int) -> None:
    bound = MAX_PIXELS_PER_BYTE.get(image.format or "")
    width, height = image.size
    if bound is not None and width * height > bound * file_bytes:
        raise _load_error(
            path,
            f"truncated or corrupt image (its header claims {width} x {height} pixels, "
            f"more than its {file_bytes} bytes can hold)",
        )


def _open_regular_file(path: Path) -> BinaryIO:
    try:
        status = os.stat(path)
        if stat.S_ISDIR(status.st_mode):
            reason = "a folder, not an image file"
        elif not stat.S_ISREG(status.st_mode):
            reason = "not a regular file"
        elif status.st_size == 0:
            reason = "empty file"
        else:
            return open(path, "rb")
    except OSError as exc:
        raise _load_error(path, _os_reason(path, exc)) from exc
    raise _load_error(path, reason)


def _open_image(file: BinaryIO) -> ImageFile.ImageFile:
    formats = _ALLOWED_FORMATS + (("HEIF",) if "HEIF" in Image.OPEN else ())
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            # Pillow warns on the full size before draft mode can shrink a JPEG; the
            # caller's max_pixels, checked after drafting, decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(file, formats=formats)
    except Image.DecompressionBombError:
        file.seek(0)
        if file.read(len(_JPEG_SIGNATURE)) != _JPEG_SIGNATURE:
            raise
        file.seek(0)
        # Past Pillow's hard ceiling only a JPEG can still be drafted below max_pixels.
        return JpegImagePlugin.JpegImageFile(file)


def _require_heif_opener(path: Path) -> None:
    if "HEIF" in Image.OPEN:
        return
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        raise _load_error(path, "HEIC needs the optional package pillow-heif") from None
    register_heif_opener()


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image))).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, _WHITE)
        flattened.paste(rgba, mask=rgba)
        return flattened
    return image if image.mode == "RGB" else image.convert("RGB")


def _scale_to_uint8(samples: np.ndarray) -> np.ndarray:
    """Map one-band integer or float samples onto 0..255 without clipping their range.

    Integers within 0..65535 are 16-bit data (even when stored as 32-bit) and map linearly,
    65535 -> 255; floats within 0..1 map 1.0 -> 255; anything else is stretched from its
    own finite minimum to maximum. NaN becomes 0.
    """
    if samples.dtype.kind in "ui" and samples.min() >= 0 and samples.max() <= 65535:
        return _SIXTEEN_TO_EIGHT_BITS[samples]
    values = samples.astype(np.float32)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low >= 0.0 and high <= 1.0:
        low, high = 0.0, 1.0
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = np.nan_to_num((values - low) * scale, nan=0.0)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _os_reason(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "broken symbolic link" if os.path.islink(path) else "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"cannot read file ({exc.strerror or exc})"


def _load_error(path: Path, reason: str) -> ImageLoadError:
    return ImageLoadError(f"{reason}: {path}")
