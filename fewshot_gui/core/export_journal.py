"""The export journal: whole JSON lines bound to file identities, written, read back, checked.

An export writes one JSON object per line. The first line names the destination; each file
operation's lines record the identity (inode, size, mtime) of the file it read and of the
folder it read it from, and of every file it made. Undo trusts no path by itself: it acts on
a path only where the file there still has the identity the journal recorded. A line is
written whole or not at all, so a full disk or a crash leaves a journal valid up to its last
complete line.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .errors import ExportError

JOURNAL_VERSION = 2
ExportMode = Literal["copy", "move", "link"]
MODES: tuple[ExportMode, ...] = ("copy", "move", "link")
JournalState = Literal["none", "exported", "undone", "damaged"]
# (inode, size, mtime_ns): no device number, which changes when a removable drive is remounted.
FileId = tuple[int, int, int]


def file_id(info: os.stat_result) -> FileId:
    return info.st_ino, info.st_size, info.st_mtime_ns


class JournalError(ExportError):
    """The journal could not be written; `errno` says why (ENOSPC: the disk is full)."""

    def __init__(self, message: str, errno: int | None) -> None:
        super().__init__(message)
        self.errno = errno


class JournalWriter:
    """Appends whole lines to a journal through an unbuffered descriptor.

    A line that cannot be written in full (a full disk) is cut back off the file before the
    error is raised, and closing never flushes anything, so no second error can follow.
    """

    def __init__(self, path: Path, descriptor: int, size: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self._size = size

    @classmethod
    def create(cls, path: Path) -> JournalWriter:
        """A new journal at `path`; an existing file is never overwritten."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)
            return cls(path, os.open(path, flags, 0o666), 0)
        except OSError as exc:
            raise ExportError(
                f"Could not create the export journal {path} ({exc.strerror}); "
                "choose a destination you can write to."
            ) from exc

    @classmethod
    def append(cls, path: Path) -> JournalWriter:
        """The journal at `path`, to add lines to; a last line cut short is ended first."""
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
        writer = cls(path, descriptor, os.fstat(descriptor).st_size)
        try:
            if writer._size and not _ends_with_newline(path):
                writer._write_whole(b"\n")
        except BaseException:
            writer.close()
            raise
        return writer

    def write(self, *, durable: bool = False, **entry: Any) -> None:
        """Append `entry` as one line; fsync it too where `durable`."""
        # ASCII JSON keeps undecodable (surrogate-escaped) file names intact.
        self._write_whole((json.dumps(entry) + "\n").encode("ascii"))
        if durable:
            try:
                os.fsync(self._descriptor)
            except OSError as exc:
                raise self._error(exc) from exc

    def _write_whole(self, data: bytes) -> None:
        written = 0
        try:
            while written < len(data):
                written += os.write(self._descriptor, data[written:])
        except OSError as exc:
            # Truncating frees space, so it works on a full disk; if not, a reader skips a
            # last line cut short.
            with contextlib.suppress(OSError):
                os.ftruncate(self._descriptor, self._size)
            raise self._error(exc) from exc
        self._size += written

    def _error(self, exc: OSError) -> JournalError:
        return JournalError(
            f"The export journal {self.path} could not be written ({exc.strerror}); "
            "stopped so that everything done so far can still be undone.",
            exc.errno,
        )

    def close(self) -> None:
        os.close(self._descriptor)

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as stream:
        stream.seek(-1, os.SEEK_END)
        return stream.read(1) == b"\n"


@dataclass(frozen=True)
class JournalOp:
    """One file operation: `source` read (identity `source_id`, from the folder whose inode is
    `source_folder`), `target` made; `created` is the inode of a copy it began writing, `done`
    the identity of what it finished making."""

    line: int
    mode: ExportMode
    source: Path
    target: Path
    source_id: FileId
    source_folder: int
    created: int | None = None
    done: FileId | None = None


@dataclass(frozen=True)
class JournalFolder:
    """A folder the export made, and its inode."""

    line: int
    path: Path
    inode: int


@dataclass(frozen=True)
class Journal:
    """A journal read back: its operations in order, the folders it made, and what was wrong
    with lines that could not be taken (`problems`, by line number)."""

    mode: ExportMode
    dest: Path
    dest_inode: int | None
    ops: list[JournalOp]
    folders: list[JournalFolder]
    problems: list[tuple[int, str]]
    undone: bool


class _Bad(ValueError):
    """One line that cannot be taken; the message says why."""


def read_journal(path: Path) -> Journal:
    """Read and check the journal at `path`; a line that cannot be trusted becomes a problem.

    Raises ExportError if the file cannot be read or its first line is not a header of this
    version (without it, no other line can be checked).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"Could not read the export journal {path}: {exc.strerror}") from exc
    lines = data.split(b"\n")
    cut_last = not data.endswith(b"\n")
    entries: list[tuple[int, dict[str, Any]]] = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            if cut_last and number == len(lines):
                continue  # a crash cut the last line short; its operation never started
            entry = None
        if isinstance(entry, dict):
            entries.append((number, entry))
        else:
            problems.append((number, "not a journal entry"))
    if not entries or entries[0][0] != 1 or entries[0][1].get("kind") != "export":
        raise ExportError(f"{path} is not an export journal.")
    try:
        mode, dest, dest_inode = _header(entries[0][1])
    except _Bad as exc:
        raise ExportError(f"The export journal {path} cannot be undone: {exc}.") from None
    reader = _Reader(mode, dest)
    for number, entry in entries[1:]:
        try:
            reader.take(number, entry)
        except _Bad as exc:
            problems.append((number, str(exc)))
    problems.sort()
    ops = list(reader.ops.values())
    return Journal(mode, dest, dest_inode, ops, reader.folders, problems, reader.undone)


def _header(entry: dict[str, Any]) -> tuple[ExportMode, Path, int | None]:
    if entry.get("version") != JOURNAL_VERSION:
        raise _Bad(
            "it was written by another version of fewshot, which did not record the identity "
            "of each file; undo it with that version, or move the files back by hand"
        )
    mode = entry.get("mode")
    if mode not in MODES:
        raise _Bad(f"unknown mode {mode!r}")
    dest_inode = entry.get("dest_inode")
    if dest_inode is not None:
        dest_inode = _int(entry, "dest_inode")
    return mode, _path(entry, "dest"), dest_inode


class _Reader:
    def __init__(self, mode: ExportMode, dest: Path) -> None:
        self.mode = mode
        self.dest = dest
        self.ops: dict[int, JournalOp] = {}
        self.folders: list[JournalFolder] = []
        self.undone = False

    def take(self, number: int, entry: dict[str, Any]) -> None:
        kind = entry.get("kind")
        if kind == "begin":
            self._begin(number, entry)
        elif kind in ("created", "done", "abandon"):
            index = _int(entry, "op")
            op = self.ops.get(index)
            if op is None or op.done is not None:
                raise _Bad(f"'{kind}' for operation {index}, which is not under way")
            if kind == "created":
                self.ops[index] = replace(op, created=_int(entry, "inode"))
            elif kind == "done":
                self.ops[index] = replace(op, done=_file_id(entry, "id"))
            else:
                del self.ops[index]
        elif kind == "mkdir":
            folder = _path(entry, "path")
            if not (_within(folder, self.dest) or _within(self.dest, folder)):
                raise _Bad(f"the folder {folder} is neither in {self.dest} nor above it")
            self.folders.append(JournalFolder(number, folder, _int(entry, "inode")))
        elif kind == "failed":
            _int(entry, "op")
        elif kind == "undone":
            self.undone = True
        else:
            raise _Bad(f"unknown entry kind {kind!r}")

    def _begin(self, number: int, entry: dict[str, Any]) -> None:
        index = _int(entry, "op")
        if index in self.ops:
            raise _Bad(f"operation {index} begins twice")
        if entry.get("mode") != self.mode:
            raise _Bad(f"mode {entry.get('mode')!r} in a {self.mode} export")
        source, target = _path(entry, "source"), _path(entry, "target")
        if not _within(target, self.dest) or target == self.dest:
            raise _Bad(f"{target} is outside the destination {self.dest}")
        if _within(source, target):
            raise _Bad(f"the source {source} lies at or inside its target")
        self.ops[index] = JournalOp(
            number,
            self.mode,
            source,
            target,
            _file_id(entry, "source_id"),
            _int(entry, "source_folder"),
        )


def _int(entry: dict[str, Any], key: str) -> int:
    value = entry.get(key)
    if type(value) is not int:
        raise _Bad(f"{key!r} is not a whole number")
    return value


def _file_id(entry: dict[str, Any], key: str) -> FileId:
    value = entry.get(key)
    if not isinstance(value, list) or len(value) != 3 or any(type(v) is not int for v in value):
        raise _Bad(f"{key!r} is not a file identity")
    return value[0], value[1], value[2]


def _path(entry: dict[str, Any], key: str) -> Path:
    value = entry.get(key)
    if not isinstance(value, str) or "\0" in value:
        raise _Bad(f"{key!r} is not a path")
    try:
        os.fsencode(value)
    except UnicodeError:
        raise _Bad(f"{key!r} is not a file name this system can hold") from None
    if not os.path.isabs(value) or os.path.normpath(value) != value:
        raise _Bad(f"{key!r} is not an absolute path in its plain form: {value!r}")
    return Path(value)


def _within(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or inside it, by their names (both absolute and plain)."""
    return path == root or root in path.parents


def journal_state(journal_path: Path | None) -> JournalState:
    """Whether the export `journal_path` records can be undone: 'exported' is the one that can.

    'none': no path, or no file there (deleted, or on a drive not mounted); 'undone': undo ran
    to the end, which undo_export marks with a last 'undone' line; 'damaged': not a journal
    this version can undo.
    Reads the first and last lines only, so a window can ask it of a journal of any size.
    """
    if journal_path is None or not os.path.isfile(journal_path):
        return "none"
    try:
        with open(journal_path, "rb") as stream:
            first = json.loads(stream.readline())
            stream.seek(max(0, os.fstat(stream.fileno()).st_size - _TAIL_BYTES))
            last = stream.read().rstrip(b"\n").rpartition(b"\n")[2]
    except (OSError, ValueError, RecursionError):
        return "damaged"
    if not isinstance(first, dict) or first.get("kind") != "export":
        return "damaged"
    if first.get("version") != JOURNAL_VERSION:
        return "damaged"  # undo_export refuses it: nothing to offer
    try:
        undone = json.loads(last).get("kind") == "undone"
    except (ValueError, AttributeError, RecursionError):
        undone = False  # a line cut short by a crash: undo never finished
    return "undone" if undone else "exported"


_TAIL_BYTES = 4096  # holds the short "undone" line; a longer last line is not that one
