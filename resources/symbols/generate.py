"""Draws the demo symbols: hand-drawn-looking strokes, each example a different hand.

    python resources/symbols/generate.py

Writes examples/<symbol>/NN.png (3 per symbol) and unlabeled/NN.png (5 per symbol plus 2 of
a symbol the examples lack), 105 x 105 black on white like Omniglot's drawings. Seeded: the
same files every time. Made here, so ours to license (MIT, as the project).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 105


def arc(cx: float, cy: float, r: float, start: float, stop: float) -> list[tuple[float, float]]:
    steps = np.linspace(math.radians(start), math.radians(stop), 24)
    return [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in steps]


# Each symbol: strokes as polylines in a unit box (y down).
SYMBOLS: dict[str, list[list[tuple[float, float]]]] = {
    "trident": [
        [(0.5, 0.9), (0.5, 0.15)],
        [(0.2, 0.15), (0.25, 0.45), (0.5, 0.55), (0.75, 0.45), (0.8, 0.15)],
    ],
    "theta": [arc(0.5, 0.5, 0.33, 0, 360), [(0.17, 0.5), (0.83, 0.5)]],
    "zigzag": [[(0.1, 0.3), (0.3, 0.75), (0.5, 0.35), (0.7, 0.75), (0.9, 0.3)]],
    "hook": [[*arc(0.6, 0.3, 0.15, 180, 360), (0.75, 0.3), (0.45, 0.85), (0.25, 0.7)]],
}
UNSEEN = {
    "star": [[(0.5, 0.12), (0.5, 0.88)], [(0.15, 0.3), (0.85, 0.7)], [(0.15, 0.7), (0.85, 0.3)]]
}


def draw(strokes: list[list[tuple[float, float]]], rng: np.random.Generator) -> Image.Image:
    """One hand: a small random turn, scale and shift, jittered points, a pen of its own."""
    angle = math.radians(rng.uniform(-12, 12))
    scale = rng.uniform(0.8, 1.0) * SIZE
    dx, dy = rng.uniform(-6, 6, 2)
    cos, sin = math.cos(angle), math.sin(angle)
    image = Image.new("L", (SIZE, SIZE), 255)
    pen = ImageDraw.Draw(image)
    width = int(rng.integers(3, 6))
    for stroke in strokes:
        points = []
        wobble = 0.02 if len(stroke) < 8 else 0.003  # corners move; curves stay smooth
        for x, y in stroke:
            x, y = x - 0.5 + rng.normal(0, wobble), y - 0.5 + rng.normal(0, wobble)
            points.append(
                (
                    SIZE / 2 + dx + scale * (cos * x - sin * y),
                    SIZE / 2 + dy + scale * (sin * x + cos * y),
                )
            )
        pen.line(points, fill=0, width=width, joint="curve")
    return image


def main() -> None:
    rng = np.random.default_rng(2026)
    for folder in ("examples", "unlabeled"):
        shutil.rmtree(HERE / folder, ignore_errors=True)
    sources = []
    number = 0
    for name, strokes in {**SYMBOLS, **UNSEEN}.items():
        if name in SYMBOLS:
            target = HERE / "examples" / name
            target.mkdir(parents=True)
            for i in range(3):
                draw(strokes, rng).save(target / f"{i + 1:02d}.png", optimize=True)
        for _ in range(5 if name in SYMBOLS else 2):
            number += 1
            path = HERE / "unlabeled" / f"symbol_{number:02d}.png"
            path.parent.mkdir(exist_ok=True)
            draw(strokes, rng).save(path, optimize=True)
            sources.append(f"unlabeled/{path.name} <- {name if name in SYMBOLS else 'unknown'}")
    (HERE / "TRUTH.txt").write_text("\n".join(sources) + "\n")


if __name__ == "__main__":
    main()
