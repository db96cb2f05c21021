"""The folder map's colours, and the map drawn as a plain picture (Pillow, no Qt) for the CLI."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

# Tableau's 20 colours, strong ones first: class i takes CLASS_COLOURS[i % 20].
CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (57, 59, 121),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (219, 219, 141),
    (158, 218, 229),
    (99, 121, 57),
)
UNKNOWN_COLOUR = (150, 150, 150)
UNKNOWN_CODE = -1  # a point's label code: a class index, or this for `unknown`
LEGEND_WIDTH = 220  # pixels on the right of a rendered map


def class_colour(code: int) -> tuple[int, int, int]:
    return UNKNOWN_COLOUR if code < 0 else CLASS_COLOURS[code % len(CLASS_COLOURS)]


def colour_table(codes: np.ndarray) -> np.ndarray:
    """RGB (n, 3) uint8 for label codes (n,): a class index, or negative for unknown."""
    table = np.array([*CLASS_COLOURS, UNKNOWN_COLOUR], np.uint8)
    return table[np.where(codes < 0, len(CLASS_COLOURS), codes % len(CLASS_COLOURS))]


def render_map(
    xy: np.ndarray,
    codes: np.ndarray,
    names: Sequence[str],
    examples: np.ndarray,
    *,
    size: int = 1200,
    point: int = 2,
) -> Image.Image:
    """The map as an RGB picture `size` pixels wide, with a legend on the right.

    xy: (n, 2) positions; codes: (n,) label codes (a class index into `names`, negative for
    unknown); examples: (n,) bool, the points drawn as outlined diamonds. Unknown points
    are drawn first, so classes stay on top of them.
    """
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    codes = np.asarray(codes, np.int64)
    examples = np.asarray(examples, bool)
    plot = size - LEGEND_WIDTH
    margin = 16
    image = Image.new("RGB", (size, plot), (255, 255, 255))
    pixels = np.asarray(image).copy()
    if len(xy):
        low, high = xy.min(0), xy.max(0)
        scale = (plot - 2 * margin) / max(float((high - low).max()), 1e-9)
        centre = (plot - scale * (high - low)) / 2
        at = np.rint(centre + scale * (xy - low)).astype(np.int64)
        at[:, 1] = plot - 1 - at[:, 1]  # y grows upwards on a map, downwards in a picture
        order = np.argsort(codes >= 0, kind="stable")  # unknown first, under the classes
        colours = colour_table(codes)
        for dy in range(-point, point + 1):
            for dx in range(-point, point + 1):
                if dx * dx + dy * dy > point * point + 1:
                    continue
                x = np.clip(at[order, 0] + dx, 0, plot - 1)
                y = np.clip(at[order, 1] + dy, 0, plot - 1)
                pixels[y, x] = colours[order]
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        r = point + 4
        for (x, y), code in zip(at[examples], codes[examples], strict=True):
            diamond = [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
            draw.polygon(diamond, fill=class_colour(int(code)), outline=(0, 0, 0), width=2)
    draw = ImageDraw.Draw(image)
    y = margin
    counts = np.bincount(np.where(codes < 0, len(names), codes), minlength=len(names) + 1)
    for code, name in [*enumerate(names), (UNKNOWN_CODE, "unknown")]:
        draw.rectangle([plot, y, plot + 12, y + 12], fill=class_colour(code))
        draw.text((plot + 18, y), f"{name} ({counts[code]})", fill=(0, 0, 0))
        y += 18
    draw.polygon(
        [(plot + 6, y + 4), (plot + 12, y + 10), (plot + 6, y + 16), (plot, y + 10)],
        fill=(255, 255, 255),
        outline=(0, 0, 0),
    )
    draw.text((plot + 18, y + 4), "an example", fill=(0, 0, 0))
    return image
