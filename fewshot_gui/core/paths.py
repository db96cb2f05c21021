"""Where resources, user models and caches live on this machine."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_path, user_data_path

APP_NAME = "fewshot-gui"
_PACKAGE = Path(__file__).resolve().parent.parent


def resources_dir() -> Path:
    """The `resources/` folder: beside the package in a checkout, inside it in a wheel."""
    for candidate in (_PACKAGE.parent / "resources", _PACKAGE / "resources"):
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
