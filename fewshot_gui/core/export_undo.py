"""Undo of an export from its journal: every file back where it was, nothing overwritten,
nothing touched that the journal cannot show its own export made."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ExportError
from .export import _copy, _describe, _free_name, _is_prefix, _same_file, _sync_folder
from .export_journal import (
    Journal,
    JournalFolder,
    JournalOp,
    JournalWriter,
    file_id,
    read_journal,
)

# Re-exported: the window asks it of the last export's journal.
from .export_journal import JournalState as JournalState
from .export_journal import journal_state as journal_state

UndoAction = Literal["restored", "removed", "kept", "skipped", "refused", "failed"]


@dataclass(frozen=True)
class UndoEvent:
    """What undo did for one journal entry; `restored_to` is where a moved file now lives.

    'refused': the entry names a file or folder that the journal cannot show its export made
    (outside the destination, another file under that name, a line that is not an entry);
    nothing was touched. 'kept': the export's own file, changed since, left where it is.
    """

    source: Path
    target: Path
    action: UndoAction
    message: str
    index: int
    total: int
    restored_to: Path | None = None

    @property
    def ok(self) -> bool:
        return self.action not in ("failed", "refused")


@dataclass(frozen=True)
class UndoSummary:
    """What undo_export returns. `failed` counts every entry not undone, `refused` those of
    them the journal could not vouch for; the journal is marked undone when only refusals
    (which a retry cannot change) are left."""

    journal: Path
    failed: int
    already_undone: bool
    refused: int = 0


class _Refused(Exception):
    """This entry is not provably the export's own: leave everything it names alone."""


def undo_export(journal_path: Path) -> Generator[UndoEvent, None, UndoSummary]:
    """Reverse the export recorded in `journal_path`, newest file first; yield one UndoEvent each.

    Every path is checked against the journal's bindings before it is touched: a target must
    lie in the export's destination and still be the very file the export made (inode, size
    and mtime as recorded), a moved file goes back only into the folder it came from (by
    inode), and a folder is removed only if it is the one the export made and is empty.
    Anything else is refused and reported, one event per entry.
    Moved files go back to their source; if that path now holds another file, next to it under
    a free name. Copies and symlinks are deleted only while still exactly what the export made
    and while the source still exists. After a crash mid-file the disk decides: a file is
    deleted only when its bytes all exist at the other path, so the only copy is never lost.
    A move back across filesystems writes a hidden copy beside the source and only then gives
    it the source's name: an undo killed midway leaves no cut-short file there, and run again
    it discards that copy, makes it anew from the intact exported file, and says so.
    When nothing failed but refusals, the journal is marked undone and a second call yields
    nothing (already_undone); otherwise it can be retried.
    Raises ExportError if the file is no export journal of this version, or its destination
    is no longer the folder the export wrote into.
    """
    journal_path = Path(os.path.abspath(journal_path))
    journal = read_journal(journal_path)
    if journal.undone:
        return UndoSummary(journal_path, failed=0, already_undone=True)
    _check_destination(journal, journal_path)
    folders, refused_folders = _sort_folders(journal)
    total = len(journal.problems) + len(journal.ops) + len(refused_folders)
    counts = {"failed": 0, "refused": 0}
    index = 0

    def event(
        source: Path, target: Path, action: UndoAction, message: str, home: Path | None = None
    ) -> UndoEvent:
        nonlocal index
        index += 1
        if action in counts:
            counts[action] += 1
        return UndoEvent(source, target, action, message, index, total, home)

    for line, reason in journal.problems:
        yield event(journal_path, journal_path, "refused", f"line {line}: {reason}; ignored it.")
    undo = _Undo(journal)
    for op in reversed(journal.ops):
        try:
            action, message, restored_to = undo.one(op)
        except _Refused as exc:
            action, message, restored_to = "refused", f"line {op.line}: {exc}", None
        except OSError as exc:
            action, message, restored_to = "failed", _describe(exc), None
        yield event(op.source, op.target, action, message, restored_to)
    for folder in refused_folders:
        message = f"line {folder.line}: {folder.path} is not a folder this export made; left it."
        yield event(folder.path, folder.path, "refused", message)
    for folder in reversed(folders):
        # rmdir only removes an empty folder: anything the user put there since stays.
        with contextlib.suppress(OSError):
            if os.lstat(folder.path).st_ino == folder.inode:
                os.rmdir(folder.path)
    failed = counts["failed"] + counts["refused"]
    if not counts["failed"]:
        try:
            with JournalWriter.append(journal_path) as writer:
                writer.write(durable=True, kind="undone")
        except (OSError, ExportError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ExportError(
                f"Undone, but could not mark the journal {journal_path} ({reason}); "
                "undoing it again is harmless."
            ) from exc
    return UndoSummary(journal_path, failed, already_undone=False, refused=counts["refused"])


def _check_destination(journal: Journal, journal_path: Path) -> None:
    try:
        info = os.stat(journal.dest)
    except OSError:
        return  # gone: every target is then gone too, and nothing there can be touched
    if journal.dest_inode is not None and info.st_ino != journal.dest_inode:
        raise ExportError(
            f"{journal.dest} is no longer the folder the export in {journal_path} wrote into; "
            "nothing was undone."
        )


def _sort_folders(journal: Journal) -> tuple[list[JournalFolder], list[JournalFolder]]:
    """The folders the journal lists, split into those still the export's own and the rest
    (another folder under that name); folders gone since are in neither."""
    ours: list[JournalFolder] = []
    others: list[JournalFolder] = []
    for folder in journal.folders:
        try:
            info = os.lstat(folder.path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_ino == folder.inode:
            ours.append(folder)
        else:
            others.append(folder)
    return ours, others


_Undone = tuple[UndoAction, str, Path | None]


class _Undo:
    """Undoes one operation at a time, each only after checking it against the journal."""

    def __init__(self, journal: Journal) -> None:
        self._dest = journal.dest
        self._real_dest = os.path.realpath(journal.dest)

    def one(self, op: JournalOp) -> _Undone:
        # A class folder replaced by a link since would lead the target outside.
        real_parent = os.path.realpath(op.target.parent)
        if os.path.commonpath([real_parent, self._real_dest]) != self._real_dest:
            raise _Refused(f"{op.target} now leads outside {self._dest}; left it.")
        return _UNDO[op.mode](op)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _ours(op: JournalOp, info: os.stat_result, what: str) -> bool | None:
    """Raise _Refused unless `info` is the regular file `op` made; whether it is unchanged
    since the export finished it (None where the journal says it never finished)."""
    if not stat.S_ISREG(info.st_mode) or (op.done is not None and info.st_ino != op.done[0]):
        raise _Refused(f"{op.target} is not the {what} this export made; left it.")
    if op.done is not None:
        return file_id(info)[1:] == op.done[1:]
    # Mid-operation: a copy has the inode journaled on creation, a move's hard link the source's.
    copied = op.created is not None and info.st_ino == op.created
    linked = op.mode == "move" and info.st_ino == op.source_id[0]
    if not (copied or linked):
        raise _Refused(f"Cannot show that {op.target} was made by this export; left it.")
    return None


def _check_home(op: JournalOp) -> None:
    """Raise unless the folder `op.source` lies in is still the one its file came from."""
    folder = op.source.parent
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, "The folder it came from is gone", str(folder)) from None
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(errno.ENOTDIR, "Where it came from is no longer a folder", str(folder))
    if info.st_ino != op.source_folder:
        raise _Refused(f"{folder} is not the folder {op.target.name} was moved from; left it.")


def _undo_move(op: JournalOp) -> _Undone:
    source, target = op.source, op.target
    info = _lstat(target)
    if info is None:
        return "skipped", f"Nothing at {target}: the file was never moved or is back.", None
    if _ours(op, info, "file") is False:
        return "kept", f"{target} changed since the export; left it there.", None
    _check_home(op)
    discarded = _discard_partial(source)
    note = " A half-done copy from an interrupted undo was discarded." if discarded else ""
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
    elif op.done is None and info.st_size != op.source_id[1]:
        return "kept", f"{target} is an incomplete copy and its source is gone; left it.", None
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


def _undo_copy(op: JournalOp) -> _Undone:
    source, target = op.source, op.target
    info = _lstat(target)
    if info is None:
        return "skipped", f"The copy {target} is already gone.", None
    unchanged = _ours(op, info, "copy")
    if not os.path.isfile(source):
        return "kept", f"Kept {target}: its source is gone, so it is the only copy.", None
    if unchanged is None:
        unchanged = _is_prefix(target, source)  # a copy cut short by a crash, or whole
    if not unchanged:
        return "kept", f"{target} changed since the export; left it alone.", None
    os.unlink(target)
    return "removed", "Removed the copy.", None


def _undo_link(op: JournalOp) -> _Undone:
    target = op.target
    info = _lstat(target)
    if info is None:
        return "skipped", f"The link {target} is already gone.", None
    if not stat.S_ISLNK(info.st_mode) or os.readlink(target) != str(op.source):
        raise _Refused(f"{target} is not the link this export made; left it.")
    if op.done is not None:
        if info.st_ino != op.done[0]:
            raise _Refused(f"{target} is not the link this export made; left it.")
    else:
        try:
            source_id = file_id(os.stat(op.source))
        except OSError:
            source_id = None
        if source_id != op.source_id:
            raise _Refused(f"Cannot show that {target} was made by this export; left it.")
    os.unlink(target)
    return "removed", "Removed the link.", None


_UNDO: dict[str, Callable[[JournalOp], _Undone]] = {
    "copy": _undo_copy,
    "move": _undo_move,
    "link": _undo_link,
}
