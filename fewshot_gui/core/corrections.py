"""A person's corrections: read from a CSV, and folded into a support set as the app does."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError
from .support import UNKNOWN, SupportClass, SupportSet


def read_corrections(path: Path) -> dict[Path, str]:
    """`path,label` rows (with that header) -> {image: class name or `unknown`}."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the corrections {path}: {error}") from error
    reader = csv.DictReader(text.splitlines())
    if not {"path", "label"} <= set(reader.fieldnames or ()):
        raise ConfigError(f"{path} needs a header line `path,label`")
    corrections: dict[Path, str] = {}
    for line, row in enumerate(reader, start=2):
        image, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not image or not label:
            raise ConfigError(f"{path}, line {line}: a correction needs a path and a label")
        corrections[Path(image)] = label
    return corrections


def apply_corrections(support: SupportSet, corrections: Mapping[Path, str]) -> SupportSet:
    """The support set the app sends with `corrections`: each image corrected to a class is
    an example of that class (and of no other); one corrected to `unknown` of none."""
    names = set(support.names)
    wrong = sorted({c for c in corrections.values() if c not in names and c != UNKNOWN})
    if wrong:
        raise ConfigError(
            f"corrections name classes the examples do not have: {', '.join(wrong)}; "
            f"use one of {', '.join(sorted(names | {UNKNOWN}))}"
        )
    classes = []
    for support_class in support.classes:
        kept = [p for p in support_class.examples if p not in corrections]
        added = [p for p, label in corrections.items() if label == support_class.name]
        classes.append(SupportClass(support_class.name, tuple(kept + added)))
    return SupportSet(tuple(classes))
