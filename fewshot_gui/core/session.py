"""A labeling session as one JSON file: classes and examples, folder, corrections, threshold, model.

The window turns its state into a `Session` and back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot_gui.core.atomic import write_json_atomic
from fewshot_gui.core.errors import FewShotError
from fewshot_gui.core.paths import user_data_dir

SESSION_FORMAT = "fewshot-gui-session/1"
SESSION_SUFFIX = ".fewshot.json"
Threshold = str | float  # "auto", "off" or a novelty value


class SessionError(FewShotError):
    """A session file is missing, damaged or from an unknown format."""


@dataclass
class Session:
    """Everything needed to reopen where a person left off; results are recomputed."""

    classes: list[tuple[str, list[Path]]] = field(default_factory=list)
    folder: Path | None = None
    corrections: dict[Path, str] = field(default_factory=dict)
    threshold: Threshold = "auto"
    model: str = ""
    last_export_journal: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SESSION_FORMAT,
            "model": self.model,
            "threshold": self.threshold,
            "folder": str(self.folder) if self.folder else None,
            "classes": [
                {"name": name, "examples": [str(p) for p in examples]}
                for name, examples in self.classes
            ],
            "corrections": {str(path): label for path, label in self.corrections.items()},
            "last_export_journal": (
                str(self.last_export_journal) if self.last_export_journal else None
            ),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Session:
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise SessionError(f"not a {SESSION_FORMAT} session")
        try:
            threshold = data.get("threshold", "auto")
            if threshold not in ("auto", "off") and not isinstance(threshold, int | float):
                raise ValueError(f"threshold {threshold!r}")
            journal = data.get("last_export_journal")
            return cls(
                classes=[
                    (str(c["name"]), [Path(p) for p in c["examples"]]) for c in data["classes"]
                ],
                folder=Path(data["folder"]) if data.get("folder") else None,
                corrections={Path(p): str(label) for p, label in data["corrections"].items()},
                threshold=threshold if isinstance(threshold, str) else float(threshold),
                model=str(data.get("model", "")),
                last_export_journal=Path(journal) if journal else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SessionError(f"the session is damaged: {error!r}") from error


def save_session(path: Path, session: Session) -> None:
    """Write `session` to `path` atomically, so a crash keeps the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, session.to_dict())


def load_session(path: Path) -> Session:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(f"no session file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SessionError(f"cannot read the session {path}: {error}") from error
    try:
        return Session.from_dict(data)
    except SessionError as error:
        raise SessionError(f"{path}: {error}") from error


def last_session_path() -> Path:
    """Where the running session is kept as it changes and at quit: the next launch opens it."""
    return user_data_dir() / f"last{SESSION_SUFFIX}"
