"""Shared fixtures: tiny real image folders made on disk for each test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_glyph_dataset(
    root: Path,
    groups: int = 4,
    classes_per_group: int = 5,
    images_per_class: int = 8,
    size: int = 28,
    seed: int = 0,
) -> Path:
    """An Omniglot-like tree root/group/classNN/NN.png of dark strokes on white.

    Each class is a random 4x4 pattern of strokes; each drawing shifts it by up to two
    pixels and flips some pixels, so classes are learnable but not trivially separable.
    """
    rng = np.random.default_rng(seed)
    for g in range(groups):
        for c in range(classes_per_group):
            pattern = rng.random((4, 4)) < 0.4
            glyph = np.kron(pattern, np.ones((size // 4, size // 4), dtype=bool))
            folder = root / f"group{g}" / f"class{c:02d}"
            folder.mkdir(parents=True)
            for i in range(images_per_class):
                drawn = np.roll(glyph, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
                drawn ^= rng.random(drawn.shape) < 0.08
                pixels = np.where(drawn, 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(folder / f"{i:02d}.png")
    return root


@pytest.fixture
def glyph_dataset(tmp_path: Path) -> Path:
    return make_glyph_dataset(tmp_path / "glyphs")


def make_distractor_dataset(
    root: Path, groups: int = 3, classes_per_group: int = 8, images_per_class: int = 6,
    seed: int = 0,
) -> Path:
    """root/group/class/N.png where the class lives in a faint left half and the right half
    is loud random noise: an untrained network is near chance, a meta-trained one is not."""
    rng = np.random.default_rng(seed)
    for g in range(groups):
        for c in range(classes_per_group):
            glyph = np.kron(rng.random((4, 2)) < 0.5, np.ones((7, 7), dtype=bool))
            folder = root / f"group{g}" / f"class{c:02d}"
            folder.mkdir(parents=True)
            for i in range(images_per_class):
                pixels = np.full((28, 28), 255, np.uint8)
                pixels[:, :14] = np.where(glyph, 200, 255)
                pixels[:, 14:] = np.where(rng.random((28, 14)) < 0.5, 0, 255)
                Image.fromarray(pixels, mode="L").save(folder / f"{i:02d}.png")
    return root


@pytest.fixture
def distractor_dataset(tmp_path: Path) -> Path:
    return make_distractor_dataset(tmp_path / "distractors")
