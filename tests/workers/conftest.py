"""Fixtures for the worker tests: a tiny Conv-4 model on disk and pattern images per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_pattern_class(folder: Path, seed: int, count: int, start: int = 0) -> list[Path]:
    """`count` 28x28 PNGs of one random 4x4 block pattern, each with a few flipped pixels."""
    pattern = np.random.default_rng(seed).random((4, 4)) < 0.5
    glyph = np.kron(pattern, np.ones((7, 7), dtype=bool))
    noise = np.random.default_rng(seed + 1000 + start)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        drawn = glyph ^ (noise.random(glyph.shape) < 0.03)
        path = folder / f"{folder.name}-{i:04d}.png"
        Image.fromarray(np.where(drawn, 0, 255).astype(np.uint8), mode="L").save(path)
        paths.append(path)
    return paths


@pytest.fixture
def pattern_class():
    return write_pattern_class


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from fewshot_gui.core.checkpoint import save_model
    from fewshot_gui.core.config import ModelConfig
    from fewshot_gui.core.methods import build_model

    torch.manual_seed(0)
    config = ModelConfig(method="protonet", backbone="conv4")
    return save_model(
        tmp_path_factory.mktemp("models") / "tiny", build_model(config), config, {"name": "tiny"}
    )
