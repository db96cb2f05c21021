"""`fewshot map` end to end: a real folder, the tiny model, a PNG with the classes' colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fewshot_gui.cli import main
from fewshot_gui.core.map_image import CLASS_COLOURS, LEGEND_WIDTH, UNKNOWN_COLOUR


def test_map_writes_a_png_with_each_class(
    tmp_path: Path, tiny_model: Path, pattern_class, capsys: pytest.CaptureFixture[str]
) -> None:
    pattern_class(tmp_path / "support" / "circle", seed=1, count=3)
    pattern_class(tmp_path / "support" / "square", seed=2, count=3)
    pattern_class(tmp_path / "images" / "a", seed=1, count=10, start=100)
    pattern_class(tmp_path / "images" / "b", seed=2, count=10, start=100)
    out = tmp_path / "map.png"
    code = main(
        [
            "map",
            "--images",
            str(tmp_path / "images"),
            "--support",
            str(tmp_path / "support"),
            "--out",
            str(out),
            "--model",
            str(tiny_model),
            "--device",
            "cpu",
            "--engine",
            "torch",
            "--unknown",
            "off",
            "--no-cache",
            "--size",
            "800",
        ]
    )
    assert code == 0
    assert "map of 26 images (6 examples) in 2 classes" in capsys.readouterr().err
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width == 800
        pixels = np.asarray(picture.convert("RGB"))
    plot = pixels[:, : 800 - LEGEND_WIDTH].reshape(-1, 3)  # the points, without the legend
    colours = {tuple(p) for p in np.unique(plot, axis=0).tolist()}
    assert CLASS_COLOURS[0] in colours and CLASS_COLOURS[1] in colours
    # Nothing is unknown with --unknown off: no grey point.
    assert UNKNOWN_COLOUR not in colours


def test_map_refuses_an_unknown_picture_format(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "support" / "a").mkdir(parents=True)
    code = main(
        [
            "map",
            "--images",
            str(tmp_path),
            "--support",
            str(tmp_path / "support"),
            "--out",
            str(tmp_path / "map.txt"),
            "--model",
            str(tiny_model),
        ]
    )
    assert code == 2
