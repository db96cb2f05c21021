"""Where resources, user models and caches live on this machine, and names safe to put there."""

from __future__ import annotations

import re
from pathlib import Path

from platformdirs import user_cache_path, user_data_path

APP_NAME = "fewshot-gui"
MAX_STEM_CHARS = 64
_UNSAFE_STEM_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_WINDOWS_DEVICE = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)
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


def safe_file_stem(name: str) -> str:
    """`name` (a model card's, say: text anyone can write) as a file name stem that stays
    inside the folder it is joined to, on any system.

    Every character but ASCII letters, digits, '.', '_' and '-' becomes '_'; leading dots go
    (no '..', no hidden file) and trailing ones too (Windows drops them); a Windows device
    name gets a '_' (CON_, nul_.x); the result has 1 to MAX_STEM_CHARS + 1 characters.
    Distinct names can give one stem: where that matters, add a hash of what the file holds.
    """
    stem = _UNSAFE_STEM_CHARS.sub("_", name)[:MAX_STEM_CHARS].strip(".") or "_"
    device = _WINDOWS_DEVICE.fullmatch(stem)
    return f"{device[1]}_{device[2] or ''}" if device else stem
