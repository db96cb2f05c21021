"""Export labeled files into class folders: a dry-run plan, a journaled copy/move/link, undo."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
import unicodedata
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

from fewshot_gui.core.errors import ExportError
from fewshot_gui.core.export_journal import (
    JOURNAL_VERSION,
    ExportMode,
    JournalError,
    JournalWriter,
    file_id,
)

# Re-exported: callers treat the manifest as part of the export surface.
from fewshot_gui.core.manifest import MANIFEST_FIELDS as MANIFEST_FIELDS
from fewshot_gui.core.manifest import ManifestRow as ManifestRow
from fewshot_gui.core.manifest import read_manifest as read_manifest
from fewshot_gui.core.manifest import write_manifest as write_manifest

MAX_NAME_CHARS = 120
# Under the common 255-byte limit with room for the "-N" and " (N)" that disambiguate names.
_MAX_NAME_BYTES = 200
_ILLEGAL_CHARS = frozenset('/\\<>:"|?*')
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{device}{digit}" for device in ("COM", "LPT") for digit in "123456789¹²³"}
)
# Bidirectional controls (U+202E and kin) make a name display as something it is not.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_CHUNK = 1 << 20
_DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


@dataclass(frozen=True)
class PlannedOp:
    """One file to export: `source` goes to `target` inside the class folder of `label`."""

    source: Path
    target: Path
    label: str


@dataclass(frozen=True)
class ExportEvent:
    """The outcome for the `index`-th of `total` files (1-based); `written` is where it went."""

    op: PlannedOp
    index: int
    total: int
    ok: bool
    error: str = ""
    written: Path | None = None


@dataclass(frozen=True)
class ExportSummary:
    """What execute_export returns: counts, whether it was cancelled, and the journal to undo."""

    journal: Path
    done: int
    failed: int
    cancelled: bool


class DiskFullError(ExportError):
    """The disk filled up mid-export; `journal` holds everything done until then, intact."""

    def __init__(self, message: str, journal: Path) -> None:
        super().__init__(message)
        self.journal = journal


def safe_folder_name(name: str) -> str:
    """Turn a class name into one path component that is legal on Linux, macOS and Windows.

    Separators, control characters, bidirectional controls (U+202E, which shows a name
    backwards, and kin) and characters Windows forbids become '_'; leading and
    trailing dots and spaces go; Windows device names (CON, com1.txt, ...) get a '_' after
    their stem; the result is NFC-normalised, at most MAX_NAME_CHARS long, never '', '.' or
    '..' ('_' instead). Distinct names may map to one folder: plan_export disambiguates them.
    """
    cleaned = "".join(
        "_"
        if char in _ILLEGAL_CHARS
        or char in _BIDI_CONTROLS
        or unicodedata.category(char) in ("Cc", "Cs")
        else char
        for char in unicodedata.normalize("NFC", name)
    )
    cleaned = _truncate(cleaned.lstrip(". "), MAX_NAME_CHARS)
    stem, dot, rest = cleaned.partition(".")
    if stem.rstrip(" ").upper() in _RESERVED_NAMES:
        cleaned = _truncate(f"{stem}_{dot}{rest}", MAX_NAME_CHARS)
    return cleaned or "_"


def plan_export(
    items: Iterable[tuple[Path, str]],
    dest: Path,
    *,
    include_unknown: bool = False,
    unknown_label: str = "unknown",
) -> list[PlannedOp]:
    """Plan where each (source file, label) goes under `dest`, without touching the disk.

    Each label gets the folder dest/safe_folder_name(label); labels that clash there (also by
    case) get '-2', '-3', ... with labels already safe keeping their plain name. A target
    keeps the source's file name, plus ' (2)', ' (3)', ... before the suffix where a file on
    disk or an earlier planned target has it. Labels equal to `unknown_label` are skipped
    unless `include_unknown`; '' (a file that could not be read) always is: it is no clutter
    for the unknown folder, and the manifest lists it with its error. All paths come back
    absolute.
    Raises ExportError if a source is listed twice or a target would land outside `dest`.
    """
    dest = Path(os.path.abspath(dest))
    if os.path.lexists(dest) and not dest.is_dir():
        raise ExportError(f"The destination {dest} is a file; choose a folder.")
    selected: list[tuple[Path, str]] = []
    sources: set[Path] = set()
    for source, label in items:
        if not label or (label == unknown_label and not include_unknown):
            continue
        source = Path(os.path.abspath(source))
        if source in sources or not source.name:
            raise ExportError(f"{source} is not a file or is listed twice; list each file once.")
        sources.add(source)
        selected.append((source, label))
    folders = _class_folders({label for _, label in selected}, dest)
    root = dest.resolve()
    taken: set[str] = set()
    plan: list[PlannedOp] = []
    for source, label in selected:
        target = _free_name(folders[label] / source.name, taken)
        taken.add(_name_key(str(target)))
        if not target.resolve().is_relative_to(root):
            raise ExportError(
                f"{target} would land outside {dest} (a symlinked class folder?); "
                "remove the link or choose another destination."
            )
        plan.append(PlannedOp(source, target, label))
    return plan


def execute_export(
    plan: list[PlannedOp],
    mode: ExportMode,
    journal_path: Path,
    *,
    cancel: Callable[[], bool] | None = None,
) -> Generator[ExportEvent, None, ExportSummary]:
    """Carry out `plan`, yielding one ExportEvent per file and returning an ExportSummary.

    'copy' writes a new file (mtime and mode kept), 'move' hard-links then unlinks (across
    filesystems: copies, fsyncs, checks the size, then deletes the source), 'link' makes a
    symlink to the absolute source path; where symlinks are not allowed that file fails.
    Nothing is ever overwritten: a target that appeared since planning gets the next free
    name. A file that fails yields ok=False and the run goes on; `cancel` is checked before
    each file. Every step goes to the JSON-lines journal at `journal_path` (a new file; a
    move's line is fsynced before the move) so undo_export can reverse it even after a crash;
    the journal binds each step to the identities of the files it read and made.
    Raises DiskFullError when the disk fills up: the run stops, nothing is left half-written
    and the journal stays valid. Raises ExportError if the journal cannot be created or written.
    """
    if mode not in _TRANSFER:
        raise ExportError(f"Unknown export mode {mode!r}; use 'copy', 'move' or 'link'.")
    journal_path = Path(os.path.abspath(journal_path))
    # plan_export puts every target at dest/CLASS/NAME.
    dest = Path(os.path.commonpath([op.target.parent.parent for op in plan] or [journal_path]))
    done = failed = 0
    with JournalWriter.create(journal_path) as journal:
        try:
            dest_inode = os.stat(dest).st_ino if os.path.isdir(dest) else None
            header = {"version": JOURNAL_VERSION, "mode": mode, "dest": str(dest)}
            journal.write(durable=True, kind="export", **header, dest_inode=dest_inode)
            for index, op in enumerate(plan, start=1):
                if cancel is not None and cancel():
                    return ExportSummary(journal_path, done, failed, cancelled=True)
                try:
                    written = _export_one(op, mode, index, journal)
                except OSError as exc:
                    if exc.errno in _DISK_FULL:
                        with contextlib.suppress(JournalError):  # the disk is the news, not this
                            journal.write(kind="failed", op=index, error=_describe(exc))
                        raise _disk_full(exc, journal_path, dest, done, len(plan)) from exc
                    failed += 1
                    journal.write(kind="failed", op=index, error=_describe(exc))
                    yield ExportEvent(op, index, len(plan), ok=False, error=_describe(exc))
                else:
                    done += 1
                    yield ExportEvent(op, index, len(plan), ok=True, written=written)
        except JournalError as exc:
            if exc.errno in _DISK_FULL:
                raise _disk_full(exc, journal_path, dest, done, len(plan)) from exc
            raise
    return ExportSummary(journal_path, done, failed, cancelled=False)


def missing_sources(plan: list[PlannedOp]) -> list[PlannedOp]:
    """The operations of `plan` whose source is no longer a file (deleted or moved since)."""
    return [op for op in plan if not os.path.isfile(op.source)]


def default_journal_path(dest: Path) -> Path:
    """A new journal path in `dest`, hidden so that labeling skips it, stamped with the time."""
    base = f".fewshot-export-{time.strftime('%Y%m%d-%H%M%S')}"
    path, count = Path(dest) / f"{base}.journal.jsonl", 1
    while os.path.lexists(path):
        count += 1
        path = Path(dest) / f"{base}-{count}.journal.jsonl"
    return path


def _disk_full(
    exc: OSError | JournalError, journal: Path, dest: Path, done: int, total: int
) -> DiskFullError:
    reason = os.strerror(exc.errno or errno.ENOSPC)
    return DiskFullError(
        f"The disk filled up while exporting into {dest} ({reason}): stopped after {done} of "
        f"{total} files, with no file left half-written; the journal {journal} lists what "
        "was done. Free some space, then undo this export and run it again.",
        journal,
    )


def _export_one(op: PlannedOp, mode: ExportMode, index: int, journal: JournalWriter) -> Path:
    source_info = os.stat(op.source)
    if not stat.S_ISREG(source_info.st_mode):
        raise OSError(errno.EINVAL, "Not a regular file", str(op.source))
    if mode == "move" and op.source.is_symlink():
        # Moving would replace the link by its file's contents; copying keeps both meanings.
        raise OSError(errno.EINVAL, "A symbolic link cannot be moved; copy it", str(op.source))
    source_folder = os.stat(op.source.parent).st_ino
    _make_folders(op.target.parent, journal)
    target = op.target

    def created(info: os.stat_result) -> None:
        journal.write(kind="created", op=index, inode=info.st_ino)

    while True:
        journal.write(
            durable=mode == "move",
            kind="begin",
            op=index,
            mode=mode,
            source=str(op.source),
            target=str(target),
            source_id=file_id(source_info),
            source_folder=source_folder,
        )
        try:
            _TRANSFER[mode](op.source, target, created)
        except FileExistsError:
            # Someone took this name since planning: never overwrite, use the next free one.
            journal.write(kind="abandon", op=index)
            target = _free_name(op.target)
            continue
        journal.write(kind="done", op=index, id=file_id(os.lstat(target)))
        return target


def _make_folders(folder: Path, journal: JournalWriter) -> None:
    missing: list[Path] = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if os.path.isdir(path) and not os.path.islink(path):
                continue  # another run made it meanwhile: it is not this export's to remove
            raise
        journal.write(kind="mkdir", path=str(path), inode=os.lstat(path).st_ino)


_Created = Callable[[os.stat_result], None]


def _copy(
    source: Path, target: Path, on_created: _Created | None = None, *, durable: bool = False
) -> None:
    created = False
    try:
        with open(source, "rb") as reader, open(target, "xb") as writer:
            created = True
            if on_created is not None:
                on_created(os.fstat(writer.fileno()))  # before any byte: undo knows it is ours
            shutil.copyfileobj(reader, writer, _CHUNK)
            if durable:
                writer.flush()
                os.fsync(writer.fileno())
        shutil.copystat(source, target)
    except BaseException:
        if created:
            target.unlink(missing_ok=True)  # the partial file this call made, nothing else
        raise


def _move(source: Path, target: Path, on_created: _Created | None = None) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:
        # Another filesystem, or one without hard links: copy durably, verify, then delete.
        _copy(source, target, on_created, durable=True)
        if os.path.getsize(target) != os.path.getsize(source):
            target.unlink()
            raise OSError(errno.EIO, "The copy came out a different size", str(target)) from None
        _sync_folder(target.parent)
    try:
        os.unlink(source)
    except OSError:
        target.unlink()  # the source is still whole, so the extra link or copy can go
        raise


def _link(source: Path, target: Path, on_created: _Created | None = None) -> None:
    os.symlink(source, target)  # fails rather than overwrite; no copy where links are refused


_TRANSFER: dict[str, Callable[[Path, Path, _Created], None]] = {
    "copy": _copy,
    "move": _move,
    "link": _link,
}


def _sync_folder(folder: Path) -> None:
    if os.name == "posix":  # Windows cannot open a folder to fsync it
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _class_folders(labels: set[str], dest: Path) -> dict[str, Path]:
    # Labels that are already safe names go first, so "a_b" keeps "a_b" and "a/b" gets "a_b-2".
    order = sorted(labels, key=lambda label: (safe_folder_name(label) != label, label))
    used: set[str] = set()
    folders: dict[str, Path] = {}
    for label in order:
        base = name = safe_folder_name(label)
        count = 1
        while _name_key(name) in used or (
            os.path.lexists(dest / name) and not (dest / name).is_dir()
        ):
            count += 1
            name = _truncate(base, MAX_NAME_CHARS - len(f"-{count}")) + f"-{count}"
        used.add(_name_key(name))
        folders[label] = dest / name
    return folders


def _free_name(path: Path, taken: set[str] | None = None) -> Path:
    candidate, count = path, 1
    while os.path.lexists(candidate) or (taken and _name_key(str(candidate)) in taken):
        count += 1
        candidate = path.with_name(f"{path.stem} ({count}){path.suffix}")
    return candidate


def _name_key(name: str) -> str:
    # Case-insensitive, normalisation-insensitive: how Windows and macOS compare names.
    return unicodedata.normalize("NFC", name).casefold()


def _truncate(name: str, max_chars: int) -> str:
    name = name[:max_chars]
    while len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        name = name[:-1]
    return name.rstrip(". ")


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _is_prefix(part: Path, whole: Path) -> bool:
    if os.path.getsize(part) > os.path.getsize(whole):
        return False
    with open(part, "rb") as part_stream, open(whole, "rb") as whole_stream:
        while chunk := part_stream.read(_CHUNK):
            if whole_stream.read(len(chunk)) != chunk:
                return False
    return True


def _describe(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"
