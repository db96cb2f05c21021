"""Undo acts only on what its own export did: hand-written journals on real files in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fewshot_gui.core.errors import ExportError
from fewshot_gui.core.export import execute_export, plan_export
from fewshot_gui.core.export_undo import UndoEvent, UndoSummary, undo_export
from fewshot_gui.core.jobs import drive


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    """A real export (one copied file) beside files and folders that no export made."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"exported" * 50)
    (photos / "twin.jpg").write_bytes(b"the user's own" * 10)
    dest = tmp_path / "sorted"
    drive(execute_export(plan_export([(photos / "a.jpg", "cat")], dest), "copy", dest / "j"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_bytes(b"precious")
    (elsewhere / "empty folder").mkdir()
    (dest / "cat" / "mine.jpg").write_bytes(b"the user's own" * 10)  # same bytes as twin.jpg
    (dest / "cat" / "empty.jpg").write_bytes(b"")  # a prefix of every file
    (dest / "cat" / "link.jpg").symlink_to(photos / "twin.jpg")
    (dest / "user folder").mkdir()
    return {
        "photos": photos,
        "dest": dest,
        "precious": elsewhere / "precious.txt",
        "empty folder": elsewhere / "empty folder",
        "mine": dest / "cat" / "mine.jpg",
        "empty": dest / "cat" / "empty.jpg",
        "link": dest / "cat" / "link.jpg",
        "user folder": dest / "user folder",
        "twin": photos / "twin.jpg",
    }


def state(tmp_path: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under tmp_path with its inode and its bytes (or where a link points)."""
    found: dict[str, tuple[Any, ...]] = {}
    for path in sorted(tmp_path.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            found[str(path)] = (info.st_ino, os.readlink(path))
        elif path.is_file() and not path.name.endswith(".jsonl"):
            found[str(path)] = (info.st_ino, info.st_mtime_ns, path.read_bytes())
        elif path.is_dir():
            found[str(path)] = (info.st_ino,)
    return found


def identity(path: Path) -> list[int]:
    info = path.lstat()
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def hostile(tmp_path: Path, dest: Path, mode: str, *entries: dict[str, Any]) -> Path:
    header = {"kind": "export", "version": 2, "mode": mode, "dest": str(dest)}
    journal = tmp_path / "hostile.journal.jsonl"
    journal.write_text("".join(json.dumps(e) + "\n" for e in (header, *entries)))
    return journal


def begin(op: int, mode: str, source: Path, target: Path, **fields: Any) -> dict[str, Any]:
    entry = {"kind": "begin", "op": op, "mode": mode, "source": str(source)}
    entry |= {"target": str(target), "source_id": [1, 2, 3], "source_folder": 4}
    return entry | fields


def undo(journal: Path) -> tuple[list[UndoEvent], UndoSummary]:
    events: list[UndoEvent] = []
    return events, drive(undo_export(journal), events.append)


def test_a_journal_cannot_move_an_unrelated_file(scene: dict[str, Path], tmp_path: Path) -> None:
    before = state(tmp_path)
    away = tmp_path / "carried off"
    away.mkdir()
    mine, precious = scene["mine"], scene["precious"]
    journal = hostile(
        tmp_path,
        scene["dest"],
        "move",
        # Outside the destination, even with its exact identity: refused as it is read.
        begin(1, "move", away / "p.txt", precious, source_id=identity(precious)),
        {"kind": "done", "op": 1, "id": identity(precious)},
        # Inside, with the right size and mtime but not the inode the export made.
        begin(2, "move", away / "m.jpg", mine),
        {"kind": "done", "op": 2, "id": [identity(mine)[0] + 1, *identity(mine)[1:]]},
        # No "done": a move cut short would have left the source's inode or a journaled copy.
        begin(3, "move", away / "n.jpg", mine, source_id=[0, *identity(mine)[1:]]),
        # The right inode but sent into a folder it never came from.
        begin(4, "move", away / "o.jpg", mine, source_folder=away.stat().st_ino + 1),
        {"kind": "done", "op": 4, "id": identity(mine)},
    )
    events, summary = undo(journal)
    assert {e.action for e in events} == {"refused"} and len(events) == 5
    assert any("outside the destination" in e.message for e in events)
    assert summary == UndoSummary(journal, failed=5, already_undone=False, refused=5)
    assert state(tmp_path) == before | {str(away): (away.stat().st_ino,)}


def test_a_journal_cannot_delete_a_file_no_export_made(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    before = state(tmp_path)
    twin, mine, empty, link = scene["twin"], scene["mine"], scene["empty"], scene["link"]
    journal = hostile(
        tmp_path,
        scene["dest"],
        "copy",
        # A byte-identical twin of the source, "done" with its size and mtime: another inode.
        begin(1, "copy", twin, mine, source_id=identity(twin)),
        {"kind": "done", "op": 1, "id": [identity(mine)[0] + 1, *identity(mine)[1:]]},
        # An empty file is a prefix of every source: a copy cut short looks like it, but the
        # export journals the inode of every copy it begins.
        begin(2, "copy", twin, empty, source_id=identity(twin)),
        begin(3, "copy", twin, mine, source_id=identity(twin)),
        {"kind": "created", "op": 3, "inode": identity(empty)[0]},
    )
    link_journal = hostile(
        tmp_path / "photos",
        scene["dest"],
        "link",
        begin(1, "link", twin, link, source_id=[0, *identity(twin)[1:]]),
    )
    events, summary = undo(journal)
    link_events, link_summary = undo(link_journal)
    assert [e.action for e in events + link_events] == ["refused"] * 4
    assert (summary.refused, link_summary.refused) == (3, 1)
    assert state(tmp_path) == before


def test_a_journal_cannot_remove_an_unrelated_folder(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    before = state(tmp_path)
    outside, inside = scene["empty folder"], scene["user folder"]
    journal = hostile(
        tmp_path,
        scene["dest"],
        "copy",
        {"kind": "mkdir", "path": str(outside), "inode": outside.stat().st_ino},
        {"kind": "mkdir", "path": str(inside), "inode": inside.stat().st_ino + 1},
        {"kind": "mkdir", "path": "relative/folder", "inode": 1},
    )
    events, summary = undo(journal)
    assert [e.action for e in events] == ["refused"] * 3
    assert summary.refused == 3
    assert outside.is_dir() and inside.is_dir()
    assert state(tmp_path) == before


def test_a_destination_replaced_since_the_export_is_refused_whole(tmp_path: Path) -> None:
    photos, dest = tmp_path / "photos", tmp_path / "sorted"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x" * 100)
    dest.mkdir()
    journal = dest / ".export.journal.jsonl"
    drive(execute_export(plan_export([(photos / "a.jpg", "cat")], dest), "move", journal))
    dest.rename(tmp_path / "old sorted")
    dest.mkdir()
    (dest / "cat").mkdir()
    (dest / "cat" / "a.jpg").write_bytes(b"someone else's")
    (tmp_path / "old sorted" / journal.name).rename(journal)
    with pytest.raises(ExportError, match="no longer the folder the export"):
        undo(journal)
    assert (dest / "cat" / "a.jpg").read_bytes() == b"someone else's"


def test_the_exports_own_files_are_still_undone_beside_refused_entries(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    journal = scene["dest"] / "j"
    with open(journal, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(begin(9, "copy", scene["twin"], scene["mine"])) + "\n")
    events, summary = undo(journal)
    assert sorted(e.action for e in events) == ["refused", "removed"]
    assert not (scene["dest"] / "cat" / "a.jpg").exists()
    assert scene["mine"].exists() and summary.refused == 1
    # A refusal is final, so the journal is marked undone: a rerun has nothing left to do.
    assert undo(journal)[1].already_undone


CONCURRENT_EXPORT = """
import sys
from pathlib import Path
from fewshot_gui.core.export import execute_export, plan_export
from fewshot_gui.core.jobs import drive
photos, dest, journal = map(Path, sys.argv[1:])
items = [(path, "cat") for path in sorted(photos.iterdir())]
summary = drive(execute_export(plan_export(items, dest), "copy", journal))
sys.exit(summary.failed)
"""


def test_two_exports_at_once_never_overwrite_and_each_undo_takes_only_its_own(
    tmp_path: Path,
) -> None:
    photos, dest = tmp_path / "photos", tmp_path / "sorted"
    photos.mkdir()
    for number in range(60):
        (photos / f"{number}.jpg").write_bytes(bytes([number]) * 20_000)
    journals = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_EXPORT, str(photos), str(dest), str(journal)],
            cwd=Path(__file__).resolve().parents[2],
        )
        for journal in journals
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    copies = sorted(dest.rglob("*.jpg"))
    assert len(copies) == 120  # every file twice: one run took "N (2).jpg", none overwrote
    for copy in copies:
        assert copy.read_bytes() == (photos / (copy.stem.split(" ")[0] + ".jpg")).read_bytes()
    events, summary = undo(journals[0])
    assert summary.failed == 0 and [e.action for e in events] == ["removed"] * 60
    begun: dict[int, str] = {}
    left = set()
    for line in journals[1].read_text().splitlines():
        entry = json.loads(line)
        if entry["kind"] == "begin":
            begun[entry["op"]] = entry["target"]
        elif entry["kind"] == "done":
            left.add(begun[entry["op"]])
    assert {str(path) for path in dest.rglob("*.jpg")} == left  # the other run's, untouched
    assert undo(journals[1])[1].failed == 0
    assert not list(dest.rglob("*.jpg"))
