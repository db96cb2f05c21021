"""Photo-like test images for the duplicate finder: a scene, its near copies, and a second
photo of the same object, written as real files."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(seed: int, object_box: tuple[int, int, int, int], size=(320, 240)) -> Image.Image:
    """A smooth, textured background (fixed per `seed`) with one object, a red mug with a
    blue band, drawn inside `object_box` (left, top, right, bottom)."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        pixels[..., channel] = 120 + 60 * a * x / width + 60 * b * y / height + 30 * c
    for _ in range(12):  # soft blobs: leaves, shadows
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(15, 60)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        pixels += blob[..., None] * rng.uniform(-70, 70, 3)
    pixels += rng.normal(0, 6, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(1)
    )
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = object_box
    band = top + (bottom - top) // 3
    draw.rounded_rectangle(object_box, radius=(right - left) // 6, fill=(200, 30, 40))
    draw.rectangle((left, band, right, band + (bottom - top) // 6), fill=(30, 60, 200))
    handle = (right - 4, top + (bottom - top) // 4, right + (right - left) // 3, bottom - 20)
    draw.ellipse(handle, outline=(200, 30, 40), width=8)
    return image


@dataclass(frozen=True)
class DuplicateSet:
    """Files written for one test: `photo` and its near copies, a byte copy of another
    photo, a different photo of the same object, and unrelated photos."""

    photo: Path
    near_copies: list[Path]
    exact_source: Path
    exact_copy: Path
    same_object: Path
    others: list[Path]


def write_duplicate_set(folder: Path) -> DuplicateSet:
    folder.mkdir(parents=True, exist_ok=True)
    photo = scene(1, (110, 70, 190, 190))
    photo_path = folder / "mug.png"
    photo.save(photo_path)
    copies = []
    half = photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.LANCZOS)
    for name, image, quality in (
        ("mug-half.jpg", half, 90),
        ("mug-q40.jpg", photo, 40),
        ("mug-gray.jpg", photo.convert("L"), 90),
        ("mug-crop.jpg", photo.crop((20, 10, 308, 226)), 90),
        ("mug-turned.jpg", photo.rotate(5, Image.Resampling.BICUBIC), 90),
    ):
        image.save(folder / name, quality=quality)
        copies.append(folder / name)
    # The same mug on the same table, photographed again: moved, nearer, table shifted.
    same_object = folder / "mug-again.png"
    scene(1, (30, 40, 130, 200)).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(same_object)
    exact_source = folder / "street.png"
    scene(7, (200, 20, 260, 100)).save(exact_source)
    exact_copy = folder / "copies" / "street (copy).png"
    exact_copy.parent.mkdir()
    shutil.copyfile(exact_source, exact_copy)
    others = []
    for seed in (11, 12):
        path = folder / f"field-{seed}.png"
        scene(seed, (40 * (seed - 10), 60, 40 * (seed - 10) + 70, 170)).save(path)
        others.append(path)
    return DuplicateSet(photo_path, copies, exact_source, exact_copy, same_object, others)
