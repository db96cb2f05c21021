"""The support set a person gives: named classes with example images. Torch-free."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError, ImageLoadError
from .images import image_identity, is_image_path, iter_image_files, thumbnail_array

UNKNOWN = "unknown"


@dataclass(frozen=True)
class SupportClass:
    name: str
    examples: tuple[Path, ...]


@dataclass(frozen=True)
class SupportSet:
    """Named classes, each with a few example images."""

    classes: tuple[SupportClass, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        if not names:
            raise ConfigError("the support set needs at least one class with examples")
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise ConfigError(f"class names must be unique; repeated: {', '.join(duplicates)}")
        for name in names:
            if not name.strip():
                raise ConfigError("class names must not be empty")
            if name == UNKNOWN:
                raise ConfigError(f"{UNKNOWN!r} is reserved for images far from every class")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[Path]]) -> SupportSet:
        return cls(
            tuple(SupportClass(name, tuple(map(Path, paths))) for name, paths in mapping.items())
        )

    @classmethod
    def from_folder(cls, root: Path) -> SupportSet:
        """One class per subfolder of `root`, named after it, with every image inside.

        Hidden subfolders ('.name') are no classes; hidden_folders(root) names them so that
        a caller can say so.
        """
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"support folder {root} does not exist")
        classes = []
        for folder in sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            examples = tuple(iter_image_files(folder))
            if examples:
                classes.append(SupportClass(folder.name, examples))
        if not classes:
            raise DataError(
                f"{root} has no class subfolders with images; lay it out as {root}/CLASS/*.jpg"
            )
        return cls(tuple(classes))


def hidden_folders(root: Path) -> list[str]:
    """The names of the hidden subfolders ('.name') of `root`, which are no classes, by name.

    SupportSet.from_folder and class_folders skip them; a caller says so in one line, since a
    class folder hidden by mistake would otherwise vanish without a word.
    """
    try:
        return sorted(p.name for p in Path(root).iterdir() if p.name.startswith(".") and p.is_dir())
    except OSError:
        return []


def class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """(name, images) for each non-hidden subfolder of `root` that holds images, by name;
    hidden_folders(root) names the hidden ones it skips."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            images = list(iter_image_files(folder))
        except DataError:  # unreadable or vanished meanwhile
            continue
        if images:
            found.append((folder.name, images))
    return found


@dataclass
class DroppedFiles:
    """`groups` maps a class name to its new examples; '' means the class dropped onto."""

    groups: dict[str, list[Path]] = field(default_factory=dict)
    rejected: list[Path] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(paths) for paths in self.groups.values())


def sort_dropped(paths: Iterable[Path], into_target: bool) -> DroppedFiles:
    """What a drop or paste of files means: examples for one class, or one class per subfolder.

    A folder with subfolders gives one class per subfolder that holds images. Other folders
    and image files go to the target class ('') when dropped onto one, else to a class named
    after the folder (of the folder itself, or of the file). Anything else is rejected.
    """
    result = DroppedFiles()
    for path in paths:
        if path.is_dir():
            subclasses = class_folders(path)
            if subclasses:
                for name, images in subclasses:
                    result.groups.setdefault(name, []).extend(images)
                continue
            try:
                images = list(iter_image_files(path))
            except DataError:
                images = []
            if not images:
                result.rejected.append(path)
            result.groups.setdefault("" if into_target else path.name, []).extend(images)
        elif path.is_file() and is_image_path(path):
            result.groups.setdefault("" if into_target else path.parent.name, []).append(path)
        else:
            result.rejected.append(path)
    result.groups = {name: paths for name, paths in result.groups.items() if paths}
    return result


def input_mismatch(channels: int, examples: Sequence[Path], sample: int = 12) -> str:
    """A sentence saying the examples do not look like what the model saw in training, or ''.

    Handwriting models (one channel) saw black strokes on white; photo models (three) saw
    photos. A few examples are looked at: colour, and how much of each image is nearly pure
    black or white, which is most of a drawing and little of a photo.
    """
    looks: list[tuple[bool, bool]] = []
    for path in list(examples)[:sample]:
        try:
            looks.append(_look(image_identity(path)))
        except ImageLoadError:
            continue
    if not looks:
        return ""
    photos = sum(colourful or not drawing for colourful, drawing in looks) / len(looks)
    drawings = sum(drawing for _, drawing in looks) / len(looks)
    if channels == 1 and photos > 0.5:
        return (
            "This model was trained on black-on-white drawings (handwriting, symbols), but your "
            "examples look like photos: choose a photo model for them."
        )
    if channels == 3 and drawings > 0.5:
        return (
            "Your examples look like black-on-white drawings; a handwriting model may suit them "
            "better than this photo model."
        )
    return ""


@functools.lru_cache(maxsize=1024)
def _look(identity: tuple[str, int, int]) -> tuple[bool, bool]:
    """(colourful, drawing) of the image file `identity` names; cached, as a support set is
    set again on every correction. The identity holds size and mtime: an edit is looked at anew.
    """
    pixels = thumbnail_array(Path(identity[0]), 64).astype(np.int16)
    colourful = float(np.abs(pixels - pixels.mean(axis=2, keepdims=True)).mean()) > 12
    gray = pixels.mean(axis=2)
    drawing = float(((gray < 40) | (gray > 215)).mean()) > 0.9 and not colourful
    return colourful, drawing
