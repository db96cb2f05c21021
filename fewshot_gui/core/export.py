"""Export labeled files into class folders: a dry-run plan, a journaled copy/move/link, undo."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import time
import unicodedata
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from fewshot_gui.core.errors import ExportError

# Re-exported: callers treat the manifest as part of the export surface.
from fewshot_gui.core.manifest import MANIFEST_FIELDS as MANIFEST_FIELDS
from fewshot_gui.core.manifest import ManifestRow as ManifestRow
from fewshot_gui.core.manifest import read_manifest as read_manifest
from fewshot_gui.core.manifest import write_manifest as write_manifest

ExportMode = Literal["copy", "move", "link"]

MAX_NAME_CHARS = 120
# Under the common 255-byte limit with room for the "-N" and " (N)" that disambiguate names.
_MAX_NAME_BYTES = 200
_ILLEGAL_CHARS = frozenset('/\\<>:"|?*')
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{device}{digit}" for device in ("COM", "LPT") for digit in "123456789¹²³"}
)
_CHUNK = 1 << 20
_JOURNAL_VERSION = 1


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


def safe_folder_name(name: str) -> str:
    """Turn a class name into one path component that is legal on Linux, macOS and Windows.

    Separators, control characters and characters Windows forbids become '_'; leading and
    trailing dots and spaces go; Windows device names (CON, com1.txt, ...) get a '_' after
    their stem; the result is NFC-normalised, at most MAX_NAME_CHARS long, never '', '.' or
    '..' ('_' instead). Distinct names may map to one folder: plan_export disambiguates them.
    """
    cleaned = "".join(
        "_" if char in _ILLEGAL_CHARS or unicodedata.category(char) in ("Cc", "Cs") else char
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
    move's line is fsynced before the move) so undo_export can reverse it even after a crash.
    Raises ExportError if the journal cannot be created or written.
    """
    if mode not in _TRANSFER:
        raise ExportError(f"Unknown export mode {mode!r}; use 'copy', 'move' or 'link'.")
    journal_path = Path(os.path.abspath(journal_path))
    done = failed = 0
    with _new_journal(journal_path) as stream:
        journal = _Journal(stream)
        journal.write(durable=True, kind="export", version=_JOURNAL_VERSION, mode=mode)
        for index, op in enumerate(plan, start=1):
            if cancel is not None and cancel():
                return ExportSummary(journal_path, done, failed, cancelled=True)
            try:
                written = _export_one(op, mode, index, journal)
            except OSError as exc:
                failed += 1
                journal.write(kind="failed", op=index, error=_describe(exc))
                yield ExportEvent(op, index, len(plan), ok=False, error=_describe(exc))
            else:
                done += 1
                yield ExportEvent(op, index, len(plan), ok=True, written=written)
    return ExportSummary(journal_path, done, failed, cancelled=False)


def default_journal_path(dest: Path) -> Path:
    """A new journal path in `dest`, hidden so that labeling skips it, stamped with the time."""
    base = f".fewshot-export-{time.strftime('%Y%m%d-%H%M%S')}"
    path, count = Path(dest) / f"{base}.journal.jsonl", 1
    while os.path.lexists(path):
        count += 1
        path = Path(dest) / f"{base}-{count}.journal.jsonl"
    return path


def _new_journal(path: Path) -> TextIO:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "x", encoding="utf-8")  # "x": an old journal is never overwritten
    except OSError as exc:
        raise ExportError(
            f"Could not create the export journal {path} ({exc.strerror}); "
            "choose a destination you can write to."
        ) from exc


class _Journal:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, *, durable: bool = False, **entry: Any) -> None:
        try:
            # ASCII JSON keeps undecodable (surrogate-escaped) file names intact.
            self._stream.write(json.dumps(entry) + "\n")
            self._stream.flush()
            if durable:
                os.fsync(self._stream.fileno())
        except OSError as exc:
            raise ExportError(
                f"The export journal {self._stream.name} could not be written ({exc.strerror}); "
                "stopped so that everything done so far can still be undone."
            ) from exc


def _export_one(op: PlannedOp, mode: ExportMode, index: int, journal: _Journal) -> Path:
    if not stat.S_ISREG(os.stat(op.source).st_mode):
        raise OSError(errno.EINVAL, "Not a regular file", str(op.source))
    if mode == "move" and op.source.is_symlink():
        # Moving would replace the link by its file's contents; copying keeps both meanings.
        raise OSError(errno.EINVAL, "A symbolic link cannot be moved; copy it", str(op.source))
    _make_folders(op.target.parent, journal)
    target = op.target
    while True:
        journal.write(
            durable=mode == "move",
            kind="begin",
            op=index,
            mode=mode,
            source=str(op.source),
            target=str(target),
        )
        try:
            _TRANSFER[mode](op.source, target)
        except FileExistsError:
            # Someone took this name since planning: never overwrite, use the next free one.
            journal.write(kind="abandon", op=index)
            target = _free_name(op.target)
            continue
        written = os.lstat(target)
        journal.write(kind="done", op=index, size=written.st_size, mtime_ns=written.st_mtime_ns)
        return target


def _make_folders(folder: Path, journal: _Journal) -> None:
    missing: list[Path] = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        os.mkdir(path)
        journal.write(kind="mkdir", path=str(path))


def _copy(source: Path, target: Path, *, durable: bool = False) -> None:
    created = False
    try:
        with open(source, "rb") as reader, open(target, "xb") as writer:
            created = True
            shutil.copyfileobj(reader, writer, _CHUNK)
            if durable:
                writer.flush()
                os.fsync(writer.fileno())
        shutil.copystat(source, target)
    except BaseException:
        if created:
            target.unlink(missing_ok=True)  # the partial file this call made, nothing else
        raise


def _move(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:
        # Another filesystem, or one without hard links: copy durably, verify, then delete.
        _copy(source, target, durable=True)
        if os.path.getsize(target) != os.path.getsize(source):
            target.unlink()
            raise OSError(errno.EIO, "The copy came out a different size", str(target)) from None
        _sync_folder(target.parent)
    try:
        os.unlink(source)
    except OSError:
        target.unlink()  # the source is still whole, so the extra link or copy can go
        raise


def _link(source: Path, target: Path) -> None:
    os.symlink(source, target)  # fails rather than overwrite; no copy where links are refused


_TRANSFER: dict[str, Callable[[Path, Path], None]] = {"copy": _copy, "move": _move, "link": _link}


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
