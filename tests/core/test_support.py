"""The support set's own checks: whether its examples suit the model's kind of input."""

from pathlib import Path

import numpy as np
from PIL import Image

from fewshot_gui.core.paths import resources_dir
from fewshot_gui.core.support import input_mismatch


def demo_photos() -> list[Path]:
    return sorted((resources_dir() / "demo" / "examples").rglob("*.jpg"))


def test_photos_do_not_suit_a_handwriting_model() -> None:
    assert "photo model" in input_mismatch(1, demo_photos())
    assert input_mismatch(3, demo_photos()) == ""


def test_drawings_do_not_suit_a_photo_model(glyph_dataset: Path) -> None:
    drawings = sorted(glyph_dataset.rglob("*.png"))[:8]
    assert "handwriting model" in input_mismatch(3, drawings)
    assert input_mismatch(1, drawings) == ""


def test_a_grayscale_photo_is_not_a_drawing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(size=(64, 64)), axis=1)
    pixels = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "gray.png")
    assert "photo model" in input_mismatch(1, [tmp_path / "gray.png"])


def test_unreadable_examples_are_not_judged(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"no")
    assert input_mismatch(1, [tmp_path / "bad.png"]) == ""


def test_an_example_changed_on_disk_is_looked_at_again(glyph_dataset: Path, tmp_path: Path) -> None:
    example = tmp_path / "example.png"
    drawing = sorted(glyph_dataset.rglob("*.png"))[0]
    example.write_bytes(drawing.read_bytes())
    assert "handwriting model" in input_mismatch(3, [example])
    assert "handwriting model" in input_mismatch(3, [example])  # the same file, looked up
    Image.open(demo_photos()[0]).save(example)  # another size and mtime: a photo now
    assert input_mismatch(3, [example]) == ""
