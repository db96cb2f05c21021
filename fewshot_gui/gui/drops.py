"""What a drop or paste of files means: examples for one class, or one class per subfolder.

Pure (stdlib and core.images): a candidate for the core, beside SupportSet.from_folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fewshot_gui.core.errors import DataError
from fewshot_gui.core.images import is_image_path, iter_image_files


@dataclass
class DroppedFiles:
    """`groups` maps a class name to its new examples; '' means the class dropped onto."""

    groups: dict[str, list[Path]] = field(default_factory=dict)
    rejected: list[Path] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(paths) for paths in self.groups.values())


def sort_dropped(paths: Iterable[Path], into_target: bool) -> DroppedFiles:
    """Sort dropped paths into class groups.

    A folder with subfolders gives one class per subfolder that holds images. Other folders
    and image files go to the target class ('') when dropped onto one, else to a class named
    after the folder (of the folder itself, or of the file). Anything else is rejected.
    """
    result = DroppedFiles()
    for path in paths:
        if path.is_dir():
            subfolders = sorted(p for p in path.iterdir() if p.is_dir() and not _hidden(p))
            if subfolders:
                for folder in subfolders:
                    images = _images_under(folder)
                    if images:
                        result.groups.setdefault(folder.name, []).extend(images)
                continue
            images = _images_under(path)
            if not images:
                result.rejected.append(path)
            result.groups.setdefault("" if into_target else path.name, []).extend(images)
        elif path.is_file() and is_image_path(path):
            result.groups.setdefault("" if into_target else path.parent.name, []).append(path)
        else:
            result.rejected.append(path)
    result.groups = {name: paths for name, paths in result.groups.items() if paths}
    return result


def _images_under(folder: Path) -> list[Path]:
    try:
        return list(iter_image_files(folder))
    except DataError:
        return []


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")
