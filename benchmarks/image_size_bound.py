"""How close real images come to the pixels-per-byte bounds that refuse padded ones.

Opens every JPEG and GIF under the given folders through `load_image` (as labeling does) and
prints the highest pixels-per-byte ratios found and how many files were refused for the
bound, then the ratios of deliberately extreme but whole files made here: blank and smooth
JPEGs at the lowest quality, Huffman-optimized, baseline and progressive, colour and gray; a
photo enlarged to 24 megapixels; blank GIFs.

    python benchmarks/image_size_bound.py /work/shared/data/caltech101-dev
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fewshot_gui.core.errors import ImageLoadError
from fewshot_gui.core.images import MAX_PIXELS_PER_BYTE, iter_image_files, load_image


def ratio_of(path: Path) -> tuple[str, float] | None:
    """(format, header pixels per byte on disk), or None for a format without a bound."""
    with Image.open(path) as image:
        if image.format not in MAX_PIXELS_PER_BYTE:
            return None
        return image.format, image.width * image.height / path.stat().st_size


def extreme_files(photo: Path | None) -> dict[str, float]:
    """Pixels per byte of whole JPEGs and GIFs made to compress as far as each goes; `photo`,
    when given, is enlarged to 24 megapixels (smooth, so highly compressible) and added."""
    ramp = np.tile(np.linspace(0, 255, 4000), (3000, 1)).astype(np.uint8)
    images = {
        "blank colour": Image.new("RGB", (4000, 3000), (255, 255, 255)),
        "blank gray": Image.new("L", (4000, 3000), 255),
        "smooth colour ramp": Image.fromarray(np.stack([ramp, ramp[::-1], ramp], -1)),
    }
    if photo is not None:
        enlarged = load_image(photo).resize((6000, 4000), Image.Resampling.BICUBIC)
        images[f"{photo.name} enlarged to 6000 x 4000"] = enlarged
    settings = {
        "default": {},
        "q1 optimized": {"quality": 1, "optimize": True},
        "q1 optimized progressive": {"quality": 1, "optimize": True, "progressive": True},
    }
    found = {}
    for name, image in images.items():
        for setting, options in settings.items():
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", **options)
            found[f"JPEG {name}, {setting}"] = image.width * image.height / len(buffer.getvalue())
    for size in ((1000, 1000), (4000, 3000), (8000, 8000)):
        buffer = io.BytesIO()
        Image.new("P", size, 0).save(buffer, "GIF")
        found[f"GIF blank {size[0]} x {size[1]}"] = size[0] * size[1] / len(buffer.getvalue())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    ratios: list[tuple[float, str, Path]] = []
    refused: list[str] = []
    for folder in args.folders:
        for path in iter_image_files(folder):
            found = ratio_of(path)
            if found is None:
                continue
            ratios.append((found[1], found[0], path))
            try:
                load_image(path, min_side=224)
            except ImageLoadError as error:
                if "can hold" in str(error):
                    refused.append(str(error))
    ratios.sort(reverse=True)
    print(f"bounds in pixels per byte: {MAX_PIXELS_PER_BYTE}")
    print(f"{len(ratios)} JPEGs and GIFs; refused for the bound: {len(refused)}")
    for line in refused[:10]:
        print(f"  {line}")
    if ratios:
        median = ratios[len(ratios) // 2][0]
        print(f"median {median:.1f} pixels per byte; highest:")
        for ratio, fmt, path in ratios[:5]:
            print(f"  {ratio:8.1f}  {fmt} {path}")
    print("whole files made to compress as far as they go:")
    most = ratios[0][2] if ratios else None
    for name, ratio in extreme_files(most).items():
        print(f"  {ratio:8.1f}  {name}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
