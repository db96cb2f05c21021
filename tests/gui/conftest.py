"""GUI fixtures: an isolated settings file and data dirs, a tiny real model, real images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from fewshot_gui.gui.main_window import MainWindow

TIMEOUT = 20_000


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


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Autosaves, caches and models of the user are never touched."""
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))


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


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def make_window(qtbot, tmp_path: Path, tiny_model: Path, settings_path: Path) -> Iterator:
    """A started window on the tiny model; `recover` answers the crash-recovery question."""
    made: list[MainWindow] = []

    def make(model: str | None = None, recover: bool = False, wait: bool = True, **options):
        settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
        window = MainWindow(
            settings,
            autosave=tmp_path / "autosave.fewshot.json",
            device="cpu",
            batch_size=options.pop("batch_size", 8),
            model=str(tiny_model) if model is None else model,
            ask=lambda _title, _text: recover,
        )
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        window.start()
        if wait:
            qtbot.waitUntil(lambda: window.model_info is not None, timeout=TIMEOUT)
        return window

    yield make
    for window in made:
        window.close()
