"""Where resources, user models and caches live on this machine."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_path, user_data_path

APP_NAME = "fewshot-gui"
_PACKAGE = Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    """The `resources/` folder: inside the package when installed, beside it in a checkout.

    The wheel and the PyInstaller bundle put it at `fewshot_gui/resources`; a checkout (and
    an editable install of one) keeps it at the top level. The package's own copy is looked
    at first so that an unrelated top-level `resources/` in site-packages is never taken.
    """
    for candidate in (_PACKAGE / "resources", _PACKAGE.parent / "resources"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / "resources"


def builtin_models_dir() -> Path:
    return resources_dir() / "models"


def user_data_dir() -> Path:
    """Where the user's own models and sessions live."""
    return user_data_path(APP_NAME)


def user_models_dir() -> Path:
    return user_data_dir() / "models"


def cache_dir() -> Path:
    return user_cache_path(APP_NAME)
