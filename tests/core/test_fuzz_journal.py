"""Fuzzing the journal parser: random and mutated journals never crash undo, and never touch
anything but the export's own files.

Each example makes a real export in a fresh folder, mutates its journal (fields set to random
JSON or to paths of files no export made, lines dropped, cut, repeated, swapped or added),
then undoes it with every call that changes the disk watched. Undo may refuse the whole
journal with an ExportError or report entries one by one; nothing else may happen, nothing
outside the example's folder may be written, and no file the export did not make may change.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fewshot_gui.core.export as export_module
from fewshot_gui.core.errors import ExportError
from fewshot_gui.core.export import execute_export, plan_export
from fewshot_gui.core.export_undo import UndoEvent, undo_export
from fewshot_gui.core.jobs import drive

ACTIONS = {"restored", "removed", "kept", "skipped", "refused", "failed"}
KEYS = ["kind", "op", "mode", "source", "target", "source_id", "source_folder", "inode", "id"]
KEYS += ["path", "dest", "dest_inode", "version"]
# {name} stands for a real path of the example; the rest are hostile as they are.
PATHS = [
    "{dest}",
    "{dest}/cat/0.jpg",
    "{dest}/cat/user.jpg",
    "{dest}/user folder",
    "{src}",
    "{src}/1.jpg",
    "{victims}/precious.txt",
    "{victims}/empty folder",
    "{victims}",
    "{outside}/outside.txt",
    "{outside}",
    "{dest}/../escape.jpg",
    "{dest}/cat/" + "y" * 300,
    "/",
    "relative/path.jpg",
    "",
    "nul\x00byte",
    "lone \ud800 surrogate",
]
VALUES = st.one_of(
    st.sampled_from(PATHS),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-3, max_value=2**40), max_size=4),
    st.sampled_from(["export", "begin", "created", "done", "abandon", "mkdir", "undone"]),
    st.sampled_from(["copy", "move", "link", 2]),
)
MUTATIONS = st.tuples(
    st.sampled_from(["set", "delete", "drop", "cut", "repeat", "swap", "add", "retarget"]),
    st.integers(min_value=0, max_value=40),
    st.sampled_from(KEYS),
    VALUES,
    st.text(max_size=40),
)
WRITERS = ("unlink", "rmdir", "link", "rename", "replace", "mkdir", "symlink", "utime", "chmod")


def mutate(
    lines: list[str], mutation: tuple[Any, ...], places: dict[str, str], forged: list[Path]
) -> None:
    kind, where, key, value, junk = mutation
    if kind == "retarget":
        retarget(lines, where, forged[where % len(forged)])
        return
    if isinstance(value, str):
        for name, path in places.items():
            value = value.replace("{" + name + "}", path)
    at = where % max(len(lines), 1)
    if kind == "add" or not lines:
        lines.insert(at, junk if where % 2 else json.dumps({"kind": value, key: value}))
    elif kind in ("set", "delete"):
        try:
            entry = json.loads(lines[at])
        except ValueError:
            return
        if isinstance(entry, dict):
            if kind == "set":
                entry[key] = value
            else:
                entry.pop(key, None)
            lines[at] = json.dumps(entry)
    elif kind == "drop":
        del lines[at]
    elif kind == "cut":
        lines[at] = lines[at][: where % (len(lines[at]) + 1)]
    elif kind == "repeat":
        lines.insert(at, lines[at])
    else:
        other = (at + 1 + where) % len(lines)
        lines[at], lines[other] = lines[other], lines[at]


def retarget(lines: list[str], where: int, victim: Path) -> None:
    """What a forger who can stat `victim` writes: an operation of the journal aimed at it,
    with its true inode, size and mtime as what the export made."""
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append(None)
    begun = [e for e in entries if isinstance(e, dict) and e.get("kind") == "begin"]
    if not begun:
        return
    chosen = begun[where % len(begun)]
    info = victim.lstat()
    chosen["target"] = str(victim)
    for entry in entries:
        if isinstance(entry, dict) and entry.get("op") == chosen.get("op"):
            if entry.get("kind") == "done":
                entry["id"] = [info.st_ino, info.st_size, info.st_mtime_ns]
            elif entry.get("kind") == "created":
                entry["inode"] = info.st_ino
    for number, entry in enumerate(entries):
        if entry is not None:
            lines[number] = json.dumps(entry)


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {str(root): (root.lstat().st_ino,)}
    for path in root.rglob("*"):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        found[str(path)] = (info.st_ino, info.st_mtime_ns, content)
    return found


class Watch:
    """Records every path a call that changes the disk is given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        for name in WRITERS:
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))
        real_open = open

        def opened(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if any(flag in mode for flag in "wax+"):
                self.paths.append(os.fspath(file))
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(export_module, "open", opened, raising=False)
        real_os_open = os.open

        def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                self.paths.append(os.fspath(path))
            return real_os_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", os_open)

    def _wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            self.paths.extend(os.fspath(a) for a in args if isinstance(a, str | os.PathLike))
            return function(*args, **kwargs)

        return watched


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outside")
    (folder / "outside.txt").write_bytes(b"no export made me")
    return folder


@settings(
    max_examples=200,
    deadline=None,  # disk timings on a shared machine vary; max_examples bounds the time
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    mode=st.sampled_from(["copy", "move", "link"]),
    mutations=st.lists(MUTATIONS, min_size=1, max_size=6),
)
def test_a_mutated_journal_never_crashes_undo_nor_touches_what_the_export_did_not_make(
    outside: Path, tmp_path_factory: pytest.TempPathFactory, mode: str, mutations: list[Any]
) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    src, dest, victims = base / "src", base / "dest", base / "victims"
    src.mkdir()
    items = []
    for number in range(3):
        (src / f"{number}.jpg").write_bytes(bytes([number]) * (1_000 + number))
        items.append((src / f"{number}.jpg", "cat" if number else "dog"))
    journal = dest / ".export.journal.jsonl"
    drive(execute_export(plan_export(items, dest), mode, journal))  # type: ignore[arg-type]
    (dest / "cat" / "user.jpg").write_bytes(b"\x01" * 1_001)  # same bytes as an export's
    (dest / "user folder").mkdir()
    (victims / "empty folder").mkdir(parents=True)
    (victims / "precious.txt").write_bytes(b"precious")
    lines = journal.read_text().splitlines()
    places = {"dest": str(dest), "src": str(src), "victims": str(victims)}
    forged = [victims / "precious.txt", outside / "outside.txt"]
    for mutation in mutations:
        mutate(lines, mutation, places | {"outside": str(outside)}, forged)
    journal.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")

    def untouchable() -> dict[str, tuple[Any, ...]]:
        users = {k: v for k, v in snapshot(dest).items() if "user" in k}
        return {**snapshot(victims), **snapshot(outside), **users}

    before = untouchable()

    events: list[UndoEvent] = []
    with pytest.MonkeyPatch.context() as patch:
        watch = Watch(patch)
        try:
            drive(undo_export(journal), events.append)
        except ExportError as error:
            assert str(error)

    assert all(e.action in ACTIONS and e.message for e in events)
    assert all(Path(p).is_relative_to(base) for p in watch.paths), watch.paths
    assert untouchable() == before
