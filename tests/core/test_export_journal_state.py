"""journal_state: whether an export's journal can still be undone, on real exports in tmp_path."""

from __future__ import annotations

from pathlib import Path

from fewshot_gui.core.export import ExportMode, execute_export, plan_export
from fewshot_gui.core.export_undo import journal_state, undo_export
from fewshot_gui.core.jobs import drive


def exported(tmp_path: Path, mode: ExportMode = "copy") -> Path:
    source = tmp_path / "photos"
    source.mkdir()
    items = []
    for name in ("a.jpg", "b.jpg"):
        (source / name).write_bytes(name.encode() * 100)
        items.append((source / name, "cat"))
    journal = tmp_path / "export.journal.jsonl"
    drive(execute_export(plan_export(items, tmp_path / "sorted"), mode, journal))
    return journal


def test_an_export_stands_until_it_is_undone(tmp_path: Path) -> None:
    journal = exported(tmp_path)
    assert journal_state(journal) == "exported"
    summary = drive(undo_export(journal))
    assert summary.failed == 0
    assert journal_state(journal) == "undone"
    assert not any((tmp_path / "sorted").rglob("*.jpg"))


def test_an_undo_that_could_not_restore_everything_can_be_retried(tmp_path: Path) -> None:
    journal = exported(tmp_path, "move")
    moved = tmp_path / "sorted" / "cat" / "a.jpg"
    # The moved files' folder of origin is now a file: undo cannot put them back there.
    (tmp_path / "photos").rmdir()
    (tmp_path / "photos").write_text("in the way")
    summary = drive(undo_export(journal))
    assert summary.failed >= 1 and moved.exists()
    assert journal_state(journal) == "exported"


def test_no_journal_and_damaged_journals(tmp_path: Path) -> None:
    assert journal_state(None) == "none"
    assert journal_state(tmp_path / "gone.journal.jsonl") == "none"
    assert journal_state(tmp_path) == "none"  # a folder is no journal file
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    assert journal_state(garbage) == "damaged"
    other = tmp_path / "other.jsonl"
    other.write_text('{"kind": "something else"}\n')
    assert journal_state(other) == "damaged"


def test_a_last_line_cut_short_is_not_an_undo(tmp_path: Path) -> None:
    journal = exported(tmp_path)
    with open(journal, "a", encoding="utf-8") as stream:
        stream.write('{"kind": "und')  # a crash while undo marked the journal
    assert journal_state(journal) == "exported"


def test_a_journal_of_long_lines_is_read_from_its_ends(tmp_path: Path) -> None:
    source = tmp_path / ("x" * 200)
    source.mkdir()
    items = []
    for number in range(300):
        path = source / f"{'y' * 150}-{number}.jpg"
        path.write_bytes(b"pixels")
        items.append((path, "cat"))
    journal = tmp_path / "export.journal.jsonl"
    drive(execute_export(plan_export(items, tmp_path / "sorted"), "copy", journal))
    assert journal.stat().st_size > 100_000
    assert journal_state(journal) == "exported"
    drive(undo_export(journal))
    assert journal_state(journal) == "undone"
