"""GUI fixtures: an isolated settings file and data dirs, a tiny real model, real images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from fewshot_gui.gui.main_window import MainWindow

TIMEOUT = 20_000


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Autosaves, caches and models of the user are never touched."""
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def make_window(qtbot, tmp_path: Path, tiny_model: Path, settings_path: Path) -> Iterator:
    """A started window on the tiny model; `answer` answers every question it asks."""
    made: list[MainWindow] = []

    def make(model: str | None = None, answer: bool = False, wait: bool = True, **options):
        settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
        window = MainWindow(
            settings,
            last_session=tmp_path / "last.fewshot.json",
            device="cpu",
            batch_size=options.pop("batch_size", 8),
            engine="torch",  # the engine choice is timed; tests must not depend on the load
            model=str(tiny_model) if model is None else model,
            ask=lambda _title, _text: answer,
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
