"""Shared fixtures: tiny real image folders made on disk for each test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Headless Qt for every test run, `make test` or a bare `pytest` alike.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
    root: Path,
    groups: int = 3,
    classes_per_group: int = 8,
    images_per_class: int = 6,
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


@pytest.fixture(scope="session")
def glyph_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Conv-4 ProtoNet meta-trained for a few seconds on glyphs; its folder."""
    from fewshot_gui.core.config import EpisodeConfig, ModelConfig, TrainConfig
    from fewshot_gui.core.datasets import ImagePool
    from fewshot_gui.core.jobs import drive
    from fewshot_gui.core.training import meta_train

    root = tmp_path_factory.mktemp("model")
    data = make_glyph_dataset(root / "data", seed=11)
    train, val = ImagePool.from_folder(data).split_holdout_groups(1)
    config = TrainConfig(
        model=ModelConfig(method="protonet"),
        episode=EpisodeConfig(10, 2, 4),
        val_episode=EpisodeConfig(5, 1, 4),
        episodes=20,
        val_every=20,
        val_episodes=20,
    )
    drive(meta_train(config, train, val, root / "run", card={"name": "glyph-test"}))
    return root / "run" / "best"


@dataclass(frozen=True)
class LabelingTask:
    """Support examples per class, a folder of images to label, and the truth for each."""

    support: dict[str, list[Path]]
    images: Path
    truth: dict[Path, str]


def make_labeling_task(
    root: Path, classes: int = 4, examples: int = 3, queries: int = 6, seed: int = 21
) -> LabelingTask:
    """Glyph classes unseen by `glyph_model`: the first drawings are examples, the rest
    are copied, shuffled in name, into one folder to label."""
    data = make_glyph_dataset(
        root / "classes",
        groups=1,
        classes_per_group=classes,
        images_per_class=examples + queries,
        seed=seed,
    )
    images = root / "images"
    images.mkdir()
    support: dict[str, list[Path]] = {}
    truth: dict[Path, str] = {}
    for folder in sorted((data / "group0").iterdir()):
        drawings = sorted(folder.glob("*.png"))
        support[folder.name] = drawings[:examples]
        for drawing in drawings[examples:]:
            target = images / f"{folder.name[-2:]}{drawing.stem}x.png"
            shutil.copy(drawing, target)
            truth[target] = folder.name
    return LabelingTask(support, images, truth)


@pytest.fixture
def labeling_task(tmp_path: Path) -> LabelingTask:
    return make_labeling_task(tmp_path / "task")


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
def pattern_class() -> Callable[..., list[Path]]:
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
