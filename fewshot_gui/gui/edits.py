"""Every edit of classes, examples and corrections, each one step on a QUndoStack."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.class_model import ClassesSnapshot, ClassModel

Corrections = tuple[tuple[Path, str], ...]
State = tuple[ClassesSnapshot, Corrections]


class _StateCommand(QUndoCommand):
    def __init__(self, editor: SessionEditor, text: str, before: State, after: State) -> None:
        super().__init__(text)
        self._editor, self._before, self._after = editor, before, after

    def redo(self) -> None:
        self._editor.apply(self._after)

    def undo(self) -> None:
        self._editor.apply(self._before)


class SessionEditor(QObject):
    """Owns the corrections and edits the ClassModel; `changed` fires after every step."""

    changed = Signal()

    def __init__(self, classes: ClassModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.classes = classes
        self.corrections: dict[Path, str] = {}
        self.undo_stack = QUndoStack(self)

    def state(self) -> State:
        return self.classes.snapshot(), tuple(self.corrections.items())

    def apply(self, state: State) -> None:
        snapshot, corrections = state
        self.classes.restore(snapshot)
        self.corrections = dict(corrections)
        self.changed.emit()

    def reset(self, classes: ClassesSnapshot, corrections: dict[Path, str]) -> None:
        """Start over from a loaded session: nothing to undo."""
        self.undo_stack.clear()
        self.apply((classes, tuple(corrections.items())))

    def new_class_name(self) -> str:
        names, number = set(self.classes.names()), len(self.classes.names()) + 1
        while f"class {number}" in names:
            number += 1
        return f"class {number}"

    def add_class(self, name: str = "") -> str:
        name = name.strip() or self.new_class_name()
        if name not in self.classes.names():
            self._push(f"Add class {name}", (*self.classes.snapshot(), (name, ())))
        return name

    def add_examples(self, groups: dict[str, Iterable[Path]]) -> int:
        """Add examples to classes by name, creating missing classes; returns how many were new.

        An image belongs to one class: adding it to one takes it out of any other.
        """
        classes = dict(self.classes.snapshot())
        added = 0
        for name, paths in groups.items():
            for path in paths:
                if path in classes.get(name, ()):
                    continue
                classes = {n: tuple(p for p in ex if p != path) for n, ex in classes.items()}
                classes[name] = (*classes.get(name, ()), path)
                added += 1
        if added:
            names = ", ".join(groups)
            self._push(f"Add {added} example(s) to {names}", tuple(classes.items()))
        return added

    def remove_examples(self, name: str, paths: Iterable[Path]) -> None:
        drop = set(paths)
        classes = tuple(
            (n, tuple(p for p in ex if not (n == name and p in drop)))
            for n, ex in self.classes.snapshot()
        )
        corrections = {p: c for p, c in self.corrections.items() if p not in drop}
        self._push(f"Remove {len(drop)} example(s) from {name}", classes, corrections)

    def rename_class(self, old: str, new: str) -> bool:
        new = new.strip()
        if not new or new == old or new in self.classes.names():
            return False
        classes = tuple((new if n == old else n, ex) for n, ex in self.classes.snapshot())
        corrections = {p: new if c == old else c for p, c in self.corrections.items()}
        self._push(f"Rename {old} to {new}", classes, corrections)
        return True

    def delete_class(self, name: str) -> None:
        classes = tuple((n, ex) for n, ex in self.classes.snapshot() if n != name)
        corrections = {p: c for p, c in self.corrections.items() if c != name}
        self._push(f"Delete class {name}", classes, corrections)

    def correct(self, paths: Iterable[Path], name: str) -> None:
        """Label `paths` as `name` and record it as the user's correction.

        For a class, each becomes an example of it, so the model re-adapts. For UNKNOWN
        ("none of these") each leaves any class it was an example of, and no class is made.
        """
        paths = list(paths)
        if not paths:
            return
        drop = set(paths)
        classes = {n: tuple(p for p in ex if p not in drop) for n, ex in self.classes.snapshot()}
        if name != UNKNOWN:
            classes[name] = (*classes.get(name, ()), *paths)
        corrections = {**self.corrections, **dict.fromkeys(paths, name)}
        text = (
            f"Label {paths[0].name} as {name}"
            if len(paths) == 1
            else (f"Label {len(paths)} images as {name}")
        )
        self._push(text, tuple(classes.items()), corrections)

    def _push(
        self, text: str, classes: ClassesSnapshot, corrections: dict[Path, str] | None = None
    ) -> None:
        after_corrections = self.corrections if corrections is None else corrections
        after = (classes, tuple(after_corrections.items()))
        if after != self.state():
            self.undo_stack.push(_StateCommand(self, text, self.state(), after))
