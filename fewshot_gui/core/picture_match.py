"""Whether two image files show the same picture: small gray thumbnails aligned over slight
crops and turns, first coarsely (blurred views), then finely (a sharper thumbnail shifted
around the best view)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .images import thumbnail_array

DECODE_SIDE = 128  # thumbnails decode at most this large (JPEGs by draft, so cheaply)
SQUASHED = 64  # side of the gray square every view is cut from, aspect ignored
VIEW = 20  # side of a coarse view: recompression and a slight turn wash out
FINE = 40  # side of the fine comparison: different photos of one object part here
# A near copy may be a crop of its original (or the other way round): each image is also
# viewed as these fractions of its sides, at a 3 x 3 grid of offsets ...
CROP_SCALES = (0.9, 0.8)
# ... and turned by these many degrees (corners filled black, as a turned copy's are).
TURNS = (-5, 5)
COARSE_MIN = 0.9  # pairs whose coarse views correlate less are not refined
SHIFTS = (-1.2, 0.0, 1.2)  # pixels the best coarse view moves by, each way, when refined


def _boxes() -> list[tuple[float, float, float, float]]:
    boxes = [(0.0, 0.0, float(SQUASHED), float(SQUASHED))]
    for scale in CROP_SCALES:
        side = scale * SQUASHED
        for top in np.linspace(0, SQUASHED - side, 3):
            for left in np.linspace(0, SQUASHED - side, 3):
                boxes.append((float(left), float(top), float(left + side), float(top + side)))
    return boxes


_BOXES = _boxes()


@dataclass(frozen=True)
class Thumbnail:
    """What one image is compared by: `turned` (the sharp gray square, then turned by each
    of TURNS), `views` (coarse views of each of those, each box of _BOXES: float16 rows of
    VIEW * VIEW, zero-mean and unit-length; row 0 the whole image) and `whole` (the sharp
    square at FINE * FINE, zero-mean and unit-length)."""

    turned: tuple[Image.Image, ...]
    views: np.ndarray
    whole: np.ndarray


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1)


def _pixels(image: Image.Image, side: int, box: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR, box=box), np.float32)


def read_thumbnail(path: Path) -> Thumbnail:
    """Gray, squashed to a square: colour, size and recompression change little.

    Raises:
        ImageLoadError: the file cannot be read as an image.
    """
    gray = Image.fromarray(thumbnail_array(path, DECODE_SIDE)).convert("L")
    # Turned before it is squashed: a turn in the picture's own proportions, as a copy's.
    squares = [
        image.resize((SQUASHED, SQUASHED), Image.Resampling.BOX)
        for image in (gray, *(gray.rotate(angle, Image.Resampling.BILINEAR) for angle in TURNS))
    ]
    turned = tuple(square.filter(ImageFilter.GaussianBlur(0.6)) for square in squares)
    softs = [square.filter(ImageFilter.GaussianBlur(1.0)) for square in squares]
    sharp = turned[0]
    views = np.stack([_pixels(image, VIEW, box).ravel() for image in softs for box in _BOXES])
    whole = _pixels(sharp, FINE, _BOXES[0]).ravel()
    return Thumbnail(turned, _unit_rows(views).astype(np.float16), _unit_rows(whole))


def picture_match(first: Thumbnail, second: Thumbnail) -> float:
    """How well two images align, from -1 to 1: the coarse correlation when it is below
    COARSE_MIN, else the best fine correlation of one whole image with the other's best
    coarse view, shifted by SHIFTS either way."""
    best_coarse, best = -1.0, -1.0
    for source, target in ((first, second), (second, first)):
        scores = source.views.astype(np.float32) @ target.views[0].astype(np.float32)
        view = int(np.argmax(scores))
        best_coarse = max(best_coarse, float(scores[view]))
        if scores[view] < COARSE_MIN:
            continue
        image = source.turned[view // len(_BOXES)]
        left, top, right, bottom = _BOXES[view % len(_BOXES)]
        width, height = right - left, bottom - top
        for dy in SHIFTS:
            for dx in SHIFTS:
                x = min(max(left + dx, 0.0), SQUASHED - width)
                y = min(max(top + dy, 0.0), SQUASHED - height)
                pixels = _pixels(image, FINE, (x, y, x + width, y + height)).ravel()
                best = max(best, float(_unit_rows(pixels) @ target.whole))
    return best if best_coarse >= COARSE_MIN else best_coarse
