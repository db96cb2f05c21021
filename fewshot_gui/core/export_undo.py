"""Undo of an export from its journal: every file back where it was, nothing overwritten."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .errors import ExportError
from .export import (
    ExportMode,
    _copy,
    _describe,
    _free_name,
    _is_prefix,
    _Journal,
    _same_file,
    _sync_folder,
)

UndoAction = Literal["restored", "removed", "kept", "skipped", "failed"]
JournalState = Literal["none", "exported", "undone", "damaged"]


@dataclass(frozen=True)
class UndoEvent:
    """What undo did for one exported file; `restored_to` is where a moved file now lives."""

    source: Path
    target: Path
    action: UndoAction
    message: str
    index: int
    total: int
    restored_to: Path | None = None

    @property
    def ok(self) -> bool:
        return self.action != "failed"


@dataclass(frozen=True)
class UndoSummary:
    """What undo_export returns; the journal is marked undone only when `failed` is 0."""

    journal: Path
    failed: int
    already_undone: bool


@dataclass(frozen=True)
class _JournalOp:
    mode: ExportMode
    source: Path
    target: Path
    done: dict[str, Any] | None = None


def undo_export(journal_path: Path) -> Generator[UndoEvent, None, UndoSummary]:
    """Reverse the export recorded in `journal_path`, newest file first; yield one UndoEvent each.

    Moved files go back to their source; if that path now holds another file, next to it under
    a free name. Copies and symlinks are deleted only while still exactly what the export made
    and while the source still exists. After a crash mid-file the disk decides: a file is
    deleted only when its bytes all exist at the other path, so the only copy is never lost.
    A move back across filesystems writes a hidden copy beside the source and only then gives
    it the source's name: an undo killed midway leaves no cut-short file there, and run again
    it discards that copy, makes it anew from the intact exported file, and says so.
    Folders the export created are removed if empty. When nothing failed the journal is marked
    undone and a second call yields nothing (already_undone); otherwise it can be retried.
    """
    journal_path = Path(os.path.abspath(journal_path))
    entries = _read_journal(journal_path)
    if any(entry.get("kind") == "undone" for entry in entries):
        return UndoSummary(journal_path, failed=0, already_undone=True)
    try:
        ops = _journal_ops(entries)
        folders = [Path(entry["path"]) for entry in entries if entry.get("kind") == "mkdir"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"The export journal {journal_path} is damaged: {exc!r}") from exc
    failed = 0
    for index, op in enumerate(reversed(ops), start=1):
        try:
            action, message, restored_to = _UNDO[op.mode](op)
        except OSError as exc:
            action, message, restored_to = "failed", _describe(exc), None
        if action == "failed":
            failed += 1
        yield UndoEvent(op.source, op.target, action, message, index, len(ops), restored_to)
    for folder in reversed(folders):
        # rmdir only removes an empty folder: anything the user put there since stays.
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    if not failed:
        try:
            with open(journal_path, "a", encoding="utf-8") as stream:
                _Journal(stream).write(durable=True, kind="undone")
        except OSError as exc:
            raise ExportError(
                f"Undone, but could not mark the journal {journal_path} ({exc.strerror}); "
                "undoing it again is harmless."
            ) from exc
    return UndoSummary(journal_path, failed, already_undone=False)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"Could not read the export journal {path}: {exc}") from exc
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            # A crash can cut only the last line short; its file operation never started.
            if any(rest.strip() for rest in lines[number:]):
                raise ExportError(
                    f"The export journal {path} is damaged at line {number}."
                ) from None
            continue
        if not isinstance(entry, dict):
            raise ExportError(f"The export journal {path} is damaged at line {number}.")
        entries.append(entry)
    if not entries or entries[0].get("kind") != "export":
        raise ExportError(f"{path} is not an export journal.")
    return entries


def _journal_ops(entries: list[dict[str, Any]]) -> list[_JournalOp]:
    ops: dict[int, _JournalOp] = {}
    for entry in entries:
        kind = entry["kind"]
        if kind == "begin":
            mode = entry["mode"]
            if mode not in _UNDO:
                raise ValueError(f"unknown mode {mode!r}")
            ops[entry["op"]] = _JournalOp(mode, Path(entry["source"]), Path(entry["target"]))
        elif kind == "abandon":
            del ops[entry["op"]]
        elif kind == "done":
            ops[entry["op"]] = replace(ops[entry["op"]], done=entry)
    return list(ops.values())


_Undone = tuple[UndoAction, str, Path | None]


def _undo_move(op: _JournalOp) -> _Undone:
    source, target = op.source, op.target
    discarded = _discard_partial(source)
    note = " A half-done copy from an interrupted undo was discarded." if discarded else ""
    if not os.path.lexists(target):
        return "skipped", f"Nothing at {target}: the file was never moved or is back.", None
    if target.is_symlink() or not target.is_file():
        return "kept", f"{target} is no longer the moved file; left it alone.{note}", None
    if os.path.lexists(source):
        if _same_file(source, target) or (op.done is None and _is_prefix(target, source)):
            # The move never finished: the source is whole, the target an extra link or copy.
            os.unlink(target)
            return "restored", "The file was still at its source; removed the extra.", source
        if op.done is not None and _same_bytes(source, target):
            # An undo stopped after placing its whole copy back, before deleting the target.
            os.unlink(target)
            return "restored", f"An interrupted undo had copied it back; removed {target}.", source
        if op.done is None:
            return "kept", f"{source} and {target} both exist and differ; left both.{note}", None
    source.parent.mkdir(parents=True, exist_ok=True)
    home = source
    while True:
        try:
            discarded = _move_back(target, home) or discarded
        except FileExistsError:
            home = _free_name(source)  # never overwrite whatever took the old name
            continue
        note = " A half-done copy from an interrupted undo was discarded." if discarded else ""
        if home == source:
            return "restored", f"Moved back.{note}", home
        taken = f"{source.name} is taken by another file; restored as {home.name}."
        return "restored", taken + note, home


def _move_back(target: Path, home: Path) -> bool:
    """Move `target` to the free name `home`; whether a half-done copy had to be discarded.

    Within one filesystem a hard link, then unlinking `target`. Across two, a copy under a
    hidden name beside `home`, fsynced, then given `home`'s name: whenever the process dies,
    `home` is absent or whole, and `target` stays until then. A copy left by a killed undo is
    deleted and made again from `target`, which is intact. Raises FileExistsError if `home`
    is taken.
    """
    discarded = _discard_partial(home)
    if os.path.lexists(home):
        raise FileExistsError(errno.EEXIST, "File exists", str(home))
    try:
        os.link(target, home)
    except FileExistsError:
        raise
    except OSError:
        partial = _partial_name(home)
        _copy(target, partial, durable=True)
        try:
            if os.path.getsize(partial) != os.path.getsize(target):
                raise OSError(errno.EIO, "The copy came out a different size", str(partial))
            _place(partial, home)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        _sync_folder(home.parent)
    os.unlink(target)
    return discarded


def _place(partial: Path, home: Path) -> None:
    """Give the finished copy `partial` the name `home`, never overwriting."""
    try:
        os.link(partial, home)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (FAT, some shares): rename, which would overwrite, after a check.
        if os.path.lexists(home):
            raise FileExistsError(errno.EEXIST, "File exists", str(home)) from None
        os.rename(partial, home)
        return
    os.unlink(partial)


def _partial_name(home: Path) -> Path:
    """Where the copy for `home` is written: hidden (labeling skips it), named by a hash of
    `home`'s name (so a rerun finds it, and long names stay under the length limit)."""
    digest = hashlib.sha256(os.fsencode(home.name)).hexdigest()[:16]
    return home.with_name(f".fewshot-undo-{digest}.part")


def _discard_partial(home: Path) -> bool:
    """Delete the copy a killed undo left for `home`, if any: it may be cut short."""
    try:
        os.unlink(_partial_name(home))
    except FileNotFoundError:
        return False
    return True


def _same_bytes(first: Path, second: Path) -> bool:
    return (
        first.is_file()
        and not first.is_symlink()
        and os.path.getsize(first) == os.path.getsize(second)
        and _is_prefix(second, first)
    )


def _undo_copy(op: _JournalOp) -> _Undone:
    source, target = op.source, op.target
    if not os.path.lexists(target):
        return "skipped", f"The copy {target} is already gone.", None
    if target.is_symlink() or not target.is_file() or not os.path.isfile(source):
        return "kept", f"Kept {target}: it is no longer the copy, or its source is gone.", None
    info = os.stat(target)
    if op.done is not None:
        ours = (info.st_size, info.st_mtime_ns) == (op.done["size"], op.done["mtime_ns"])
    else:
        ours = _is_prefix(target, source)
    if not ours:
        return "kept", f"{target} changed since the export; left it alone.", None
    os.unlink(target)
    return "removed", "Removed the copy.", None


def _undo_link(op: _JournalOp) -> _Undone:
    target = op.target
    if not target.is_symlink():
        if os.path.lexists(target):
            return "kept", f"{target} is no longer the link the export made; left it.", None
        return "skipped", f"The link {target} is already gone.", None
    if os.readlink(target) != str(op.source):
        return "kept", f"{target} now points elsewhere; left it alone.", None
    os.unlink(target)
    return "removed", "Removed the link.", None


_UNDO: dict[str, Callable[[_JournalOp], _Undone]] = {
    "copy": _undo_copy,
    "move": _undo_move,
    "link": _undo_link,
}


def journal_state(journal_path: Path | None) -> JournalState:
    """Whether the export `journal_path` records can be undone: 'exported' is the one that can.

    'none': no path, or no file there (deleted, or on a drive not mounted); 'undone': undo ran
    to the end, which undo_export marks with a last 'undone' line; 'damaged': not a journal.
    Reads the first and last lines only, so a window can ask it of a journal of any size.
    """
    if journal_path is None or not os.path.isfile(journal_path):
        return "none"
    try:
        with open(journal_path, "rb") as stream:
            first = json.loads(stream.readline())
            stream.seek(max(0, os.fstat(stream.fileno()).st_size - _TAIL_BYTES))
            last = stream.read().rstrip(b"\n").rpartition(b"\n")[2]
    except (OSError, ValueError):
        return "damaged"
    if not isinstance(first, dict) or first.get("kind") != "export":
        return "damaged"
    try:
        undone = json.loads(last).get("kind") == "undone"
    except (ValueError, AttributeError):  # a line cut short by a crash: undo never finished
        undone = False
    return "undone" if undone else "exported"


_TAIL_BYTES = 4096  # holds the short "undone" line; a longer last line is not that one
