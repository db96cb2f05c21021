"""Tests for export planning, the journaled copy/move/link, and undo, on real files in tmp_path."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import BinaryIO

import pytest

from fewshot_gui.core.errors import ExportError
from fewshot_gui.core.export import (
    MAX_NAME_CHARS,
    ExportEvent,
    ExportMode,
    ExportSummary,
    PlannedOp,
    default_journal_path,
    execute_export,
    missing_sources,
    plan_export,
    safe_folder_name,
)
from fewshot_gui.core.export_undo import UndoEvent, UndoSummary, undo_export
from fewshot_gui.core.jobs import drive

# Contents by path under the source root; two files share a name to exercise collisions.
SOURCE_FILES: dict[str, bytes] = {
    "one/a.jpg": b"first a" * 100,
    "two/a.jpg": b"second a" * 100,
    "one/猫, it's 'quoted'.png": '猫, comma and "quotes"'.encode(),
    "two/big.bin": bytes(range(256)) * 10_000,  # 2.5 MB: more than one copy chunk
    "two/empty.txt": b"",
}
LABELS = {
    "one/a.jpg": "cat",
    "two/a.jpg": "cat",
    "two/big.bin": "dog",
    "two/empty.txt": "dog",
    "one/猫, it's 'quoted'.png": "猫/cat",
}


class Crash(BaseException):
    """Stands in for the process dying: nothing in the code under test may catch it."""


def sha256_tree(root: Path) -> dict[str, str]:
    """Every file and link under `root` by relative path: a digest, or where a link points."""
    tree: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            tree[key] = "-> " + os.readlink(path)
        elif path.is_file():
            tree[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for relative, content in SOURCE_FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return root


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "dest"


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "export.journal.jsonl"


def items_for(src: Path) -> list[tuple[Path, str]]:
    return [(src / relative, label) for relative, label in LABELS.items()]


def run(plan: list[PlannedOp], mode: ExportMode, journal: Path) -> list[ExportEvent]:
    return list(execute_export(plan, mode, journal))


def export(
    plan: list[PlannedOp], mode: ExportMode, journal: Path
) -> tuple[list[ExportEvent], ExportSummary]:
    events: list[ExportEvent] = []
    return events, drive(execute_export(plan, mode, journal), events.append)


def undo(journal: Path) -> tuple[list[UndoEvent], UndoSummary]:
    events: list[UndoEvent] = []
    return events, drive(undo_export(journal), events.append)


# --- safe_folder_name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cat", "cat"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ('x<>:"|?*y', "x_______y"),
        ("tab\there\x00nul\x7f", "tab_here_nul_"),
        ("..", "_"),
        (".", "_"),
        ("", "_"),
        ("  . hidden . ", "hidden"),
        ("CON", "CON_"),
        ("con", "con_"),
        ("com1.txt", "com1_.txt"),
        ("LPT9", "LPT9_"),
        ("Aux.tar.gz", "Aux_.tar.gz"),
        ("console", "console"),
        ("COM10", "COM10"),
        ("Ünïcødé 猫 🐱", "Ünïcødé 猫 🐱"),
        ("../../etc", "_.._etc"),
    ],
)
def test_safe_folder_name_cases(name: str, expected: str) -> None:
    assert safe_folder_name(name) == expected


def test_safe_folder_name_normalises_unicode_to_nfc() -> None:
    assert safe_folder_name("e\u0301") == "\u00e9"


def test_safe_folder_name_caps_length_in_chars_and_bytes() -> None:
    assert safe_folder_name("x" * 500) == "x" * MAX_NAME_CHARS
    wide = safe_folder_name("猫" * 500)
    assert set(wide) == {"猫"}
    assert len(wide.encode()) <= 200
    assert not safe_folder_name("a" * (MAX_NAME_CHARS - 1) + ". tail").endswith((".", " "))


@pytest.mark.parametrize(
    "name", ["../../etc", "/etc/passwd", "..\\..\\windows", "a/../..", "\x00", " ..", "nul.txt"]
)
def test_safe_folder_name_is_one_creatable_component(tmp_path: Path, name: str) -> None:
    folder = tmp_path / safe_folder_name(name)
    folder.mkdir()
    assert folder.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.mark.parametrize("control", list(BIDI_CONTROLS))
def test_bidi_controls_never_reach_a_folder_name(control: str) -> None:
    # "cat\u202egpj.exe" would show as "catexe.jpg": the name must show what it is.
    assert safe_folder_name(f"cat{control}gpj.exe") == "cat_gpj.exe"


def test_a_class_named_with_a_right_to_left_override_exports_to_a_plain_folder(
    src: Path, dest: Path
) -> None:
    (op,) = plan_export([(src / "one/a.jpg", "invoice\u202efdp.exe")], dest)
    assert op.target.parent == dest / "invoice_fdp.exe"
    assert not set(str(op.target.relative_to(dest))) & set(BIDI_CONTROLS)


# --- plan_export -------------------------------------------------------------------------------


def test_plan_writes_nothing_and_names_targets(src: Path, dest: Path) -> None:
    before = sha256_tree(src.parent)
    plan = plan_export(items_for(src), dest)
    assert sha256_tree(src.parent) == before
    assert not dest.exists()
    targets = {op.source.relative_to(src).as_posix(): op.target for op in plan}
    assert targets == {
        "one/a.jpg": dest / "cat" / "a.jpg",
        "two/a.jpg": dest / "cat" / "a (2).jpg",
        "two/big.bin": dest / "dog" / "big.bin",
        "two/empty.txt": dest / "dog" / "empty.txt",
        "one/猫, it's 'quoted'.png": dest / "猫_cat" / "猫, it's 'quoted'.png",
    }
    assert all(op.label == LABELS[op.source.relative_to(src).as_posix()] for op in plan)


def test_plan_avoids_files_already_on_disk(src: Path, dest: Path) -> None:
    (dest / "cat").mkdir(parents=True)
    (dest / "cat" / "a.jpg").write_bytes(b"mine")
    (dest / "cat" / "a (2).jpg").write_bytes(b"mine too")
    plan = plan_export([(src / "one/a.jpg", "cat"), (src / "two/a.jpg", "cat")], dest)
    assert [op.target.name for op in plan] == ["a (3).jpg", "a (4).jpg"]


def test_plan_makes_distinct_folders_for_labels_that_sanitise_alike(src: Path, dest: Path) -> None:
    labels = ["a/b", "a_b", "a:b", "Cat", "cat"]
    sources = [src / "one/a.jpg", src / "two/a.jpg", src / "two/big.bin", src / "two/empty.txt"]
    sources.append(src / "one/猫, it's 'quoted'.png")
    plan = plan_export(list(zip(sources, labels, strict=True)), dest)
    folders = {op.label: op.target.parent.name for op in plan}
    assert folders == {"a_b": "a_b", "a/b": "a_b-2", "a:b": "a_b-3", "Cat": "Cat", "cat": "cat-2"}
    assert plan == plan_export(list(zip(sources, labels, strict=True))[::-1], dest)[::-1]


def test_plan_never_uses_a_file_as_class_folder(src: Path, dest: Path) -> None:
    dest.mkdir()
    (dest / "cat").write_bytes(b"a file, not a folder")
    (op,) = plan_export([(src / "one/a.jpg", "cat")], dest)
    assert op.target == dest / "cat-2" / "a.jpg"


@pytest.mark.parametrize("label", ["../../etc", "..", "/abs/path", "..\\..\\x", "a/../../b", "."])
def test_plan_keeps_malicious_labels_inside_dest(src: Path, dest: Path, label: str) -> None:
    (op,) = plan_export([(src / "one/a.jpg", label)], dest)
    assert op.target.parent.parent == dest
    assert op.target.resolve().is_relative_to(dest.resolve())


def test_plan_refuses_a_class_folder_linked_outside_dest(
    src: Path, dest: Path, tmp_path: Path
) -> None:
    dest.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (dest / "cat").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ExportError, match="outside"):
        plan_export([(src / "one/a.jpg", "cat")], dest)


def test_plan_skips_unknown_unless_asked_and_unreadable_always(src: Path, dest: Path) -> None:
    items = [(src / "one/a.jpg", "cat"), (src / "two/a.jpg", "unknown"), (src / "two/big.bin", "")]
    assert [op.label for op in plan_export(items, dest)] == ["cat"]
    plan = plan_export(items, dest, include_unknown=True, unknown_label="unknown")
    assert [(op.source.name, op.target.parent.name) for op in plan] == [
        ("a.jpg", "cat"),
        ("a.jpg", "unknown"),
    ]


def test_missing_sources_names_the_files_gone_since_labeling(src: Path, dest: Path) -> None:
    plan = plan_export(items_for(src), dest)
    (src / "two/big.bin").unlink()
    (src / "one/a.jpg").unlink()
    (src / "one/a.jpg").mkdir()  # a folder is no file to export either
    assert {op.source for op in missing_sources(plan)} == {src / "two/big.bin", src / "one/a.jpg"}


def test_plan_rejects_a_file_listed_twice_and_a_file_as_dest(src: Path, dest: Path) -> None:
    with pytest.raises(ExportError, match="twice"):
        plan_export([(src / "one/a.jpg", "cat"), (src / "one/a.jpg", "dog")], dest)
    with pytest.raises(ExportError, match="is a file"):
        plan_export([(src / "one/a.jpg", "cat")], src / "one/a.jpg")


# --- execute_export and undo_export end to end ------------------------------------------------


def test_copy_end_to_end_then_undo(src: Path, dest: Path, journal: Path) -> None:
    before = sha256_tree(src)
    mtimes = {p: p.stat().st_mtime_ns for p in src.rglob("*") if p.is_file()}
    plan = plan_export(items_for(src), dest)
    events, summary = export(plan, "copy", journal)
    assert summary == ExportSummary(journal, done=5, failed=0, cancelled=False)
    assert [(e.ok, e.index, e.total) for e in events] == [(True, i, 5) for i in range(1, 6)]
    for op in plan:
        assert op.target.read_bytes() == op.source.read_bytes()
        assert op.target.stat().st_mtime_ns == op.source.stat().st_mtime_ns
    assert sha256_tree(src) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    undo_events, undo_summary = undo(journal)
    assert {e.action for e in undo_events} == {"removed"}
    assert undo_summary == UndoSummary(journal, failed=0, already_undone=False)
    assert sha256_tree(src) == before
    assert not dest.exists()


def test_move_end_to_end_then_undo_restores_every_byte(
    src: Path, dest: Path, journal: Path
) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    digests = {op.target: hashlib.sha256(op.source.read_bytes()).hexdigest() for op in plan}
    assert all(event.ok for event in run(plan, "move", journal))
    assert not any(op.source.exists() for op in plan)
    assert {t: hashlib.sha256(t.read_bytes()).hexdigest() for t in digests} == digests
    events, summary = undo(journal)
    assert [e.action for e in events] == ["restored"] * 5
    assert all(e.restored_to == e.source for e in events)
    assert summary.failed == 0
    assert sha256_tree(src) == before
    assert not dest.exists()  # every folder the export made is gone again


def test_link_end_to_end_then_undo(src: Path, dest: Path, journal: Path) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    assert all(event.ok for event in run(plan, "link", journal))
    for op in plan:
        assert op.target.is_symlink()
        assert os.readlink(op.target) == str(op.source) and op.source.is_absolute()
        assert op.target.read_bytes() == op.source.read_bytes()
    events, _ = undo(journal)
    assert [e.action for e in events] == ["removed"] * 5
    assert sha256_tree(src) == before
    assert not dest.exists()


def test_link_failure_is_reported_not_silently_copied(
    src: Path, dest: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_symlinks(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Symbolic links are not allowed here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    plan = plan_export(items_for(src), dest)
    events = run(plan, "link", journal)
    assert [e.ok for e in events] == [False] * 5
    assert "not allowed" in events[0].error
    assert sha256_tree(dest) == {}  # class folders, but no file in them


@pytest.mark.parametrize("mode", ["copy", "move", "link"])
def test_never_overwrites_a_file_that_appears_after_planning(
    src: Path, dest: Path, journal: Path, mode: ExportMode
) -> None:
    plan = plan_export([(src / "one/a.jpg", "cat")], dest)
    source_bytes = (src / "one/a.jpg").read_bytes()
    dest.joinpath("cat").mkdir(parents=True)
    plan[0].target.write_bytes(b"the user's own file")
    (event,) = run(plan, mode, journal)
    assert event.ok and event.written == dest / "cat" / "a (2).jpg"
    assert plan[0].target.read_bytes() == b"the user's own file"
    assert event.written.read_bytes() == source_bytes
    undo(journal)
    assert plan[0].target.read_bytes() == b"the user's own file"
    assert (src / "one/a.jpg").read_bytes() == source_bytes
    assert not event.written.exists()


def test_unwritable_destination_fails_per_file_and_goes_on(
    src: Path, tmp_path: Path, journal: Path
) -> None:
    # Running as root ignores permission bits, so make folder creation itself impossible.
    blocker = tmp_path / "blocker"
    dest = blocker / "dest"
    plan = plan_export(items_for(src), dest)
    blocker.write_bytes(b"a regular file where a folder should be")
    before = sha256_tree(src)
    events, summary = export(plan, "move", journal)
    assert [e.ok for e in events] == [False] * 5
    assert all(e.error and e.written is None for e in events)
    assert summary == ExportSummary(journal, done=0, failed=5, cancelled=False)
    assert sha256_tree(src) == before
    assert undo(journal)[0] == []  # nothing began, so there is nothing to reverse
    assert sha256_tree(src) == before


def test_a_class_folder_another_run_makes_meanwhile_is_used_and_kept(
    src: Path, dest: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_export([(src / "one/a.jpg", "cat")], dest)
    real_mkdir = os.mkdir

    def mkdir(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> None:
        if Path(path) == dest / "cat":
            real_mkdir(path)  # a concurrent export wins the race for the class folder
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    (event,) = run(plan, "copy", journal)
    monkeypatch.undo()
    assert event.ok and event.written == dest / "cat" / "a.jpg"
    assert undo(journal)[1].failed == 0
    assert (dest / "cat").is_dir() and not event.written.exists()  # its folder: not ours


def test_one_blocked_class_folder_does_not_stop_the_others(
    src: Path, dest: Path, journal: Path
) -> None:
    plan = plan_export(items_for(src), dest)
    dest.mkdir()
    (dest / "cat").write_bytes(b"became a file after planning")
    events = run(plan, "copy", journal)
    assert {e.op.label: e.ok for e in events} == {"cat": False, "dog": True, "猫/cat": True}
    assert (dest / "cat").read_bytes() == b"became a file after planning"


def test_move_that_cannot_delete_its_source_leaves_no_second_copy(
    src: Path, dest: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_export([(src / "one/a.jpg", "cat"), (src / "two/a.jpg", "cat")], dest)
    real_unlink = os.unlink

    def unlink(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> None:
        if Path(path) == plan[0].source:  # as if its folder were read-only
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    first, second = run(plan, "move", journal)
    assert not first.ok and "Permission denied" in first.error
    assert plan[0].source.exists() and not plan[0].target.exists()
    assert second.ok and not plan[1].source.exists() and plan[1].target.exists()


def test_source_vanishing_mid_run_fails_that_file_only(
    src: Path, dest: Path, journal: Path
) -> None:
    plan = plan_export(items_for(src), dest)
    job = execute_export(plan, "move", journal)
    first = next(job)
    plan[1].source.unlink()
    rest = list(job)
    assert first.ok and [e.ok for e in rest] == [False, True, True, True]
    assert str(plan[1].source) in rest[0].error
    assert not plan[1].target.exists()


def test_cancel_stops_between_files_and_undo_restores(src: Path, dest: Path, journal: Path) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    seen: list[ExportEvent] = []
    job = execute_export(plan, "move", journal, cancel=lambda: len(seen) >= 2)
    with pytest.raises(StopIteration) as stop:
        while True:
            seen.append(next(job))
    assert stop.value.value == ExportSummary(journal, done=2, failed=0, cancelled=True)
    assert len(seen) == 2
    assert all(op.source.exists() and not op.target.exists() for op in plan[2:])
    undo(journal)
    assert sha256_tree(src) == before


def test_stopping_iteration_midway_leaves_an_undoable_journal(
    src: Path, dest: Path, journal: Path
) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    job = execute_export(plan, "move", journal)
    next(job), next(job), next(job)
    job.close()
    assert sum(op.target.exists() for op in plan) == 3
    undo(journal)
    assert sha256_tree(src) == before
    assert not dest.exists()


def crash_on_unlink(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """Make the process 'die' when it is about to delete `victim`."""
    real_unlink = os.unlink

    def unlink(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> None:
        if Path(path) == victim:
            raise Crash
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)


@pytest.mark.parametrize("cross_device", [False, True])
def test_crash_between_placing_the_file_and_deleting_the_source(
    src: Path,
    dest: Path,
    journal: Path,
    monkeypatch: pytest.MonkeyPatch,
    cross_device: bool,
) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    if cross_device:

        def no_hard_links(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "link", no_hard_links)
    crash_on_unlink(monkeypatch, plan[2].source)
    job = execute_export(plan, "move", journal)
    with pytest.raises(Crash):
        list(job)
    monkeypatch.undo()
    assert plan[2].source.exists() and plan[2].target.exists()  # two copies, no "done" line
    events, summary = undo(journal)
    assert summary.failed == 0
    assert sha256_tree(src) == before
    assert not dest.exists()
    assert events[0].source == plan[2].source and events[0].action == "restored"


def test_crash_before_done_lines_reach_the_journal(src: Path, dest: Path, journal: Path) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    run(plan, "move", journal)
    lines = journal.read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["kind"] != "done"]
    journal.write_text("\n".join(kept) + '\n{"kind": "beg')  # and a last line cut short
    events, summary = undo(journal)
    assert [e.action for e in events] == ["restored"] * 5 and summary.failed == 0
    assert sha256_tree(src) == before


def test_crash_right_after_a_name_clash_spares_the_file_that_clashed(
    src: Path, dest: Path, journal: Path
) -> None:
    plan = plan_export([(src / "two/empty.txt", "dog")], dest)
    (dest / "dog").mkdir(parents=True)
    plan[0].target.write_bytes(b"")  # the user's empty file: a prefix of anything
    run(plan, "move", journal)
    # Rewind to the moment after the clash was journaled, before the next name was tried.
    lines = journal.read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "abandon")
    journal.write_text("\n".join(lines[: cut + 1]) + "\n")
    (dest / "dog" / "empty (2).txt").rename(plan[0].source)
    events, summary = undo(journal)
    assert events == [] and summary.failed == 0
    assert plan[0].target.exists() and plan[0].source.exists()


def test_crash_mid_copy_removes_only_a_partial_copy_of_ours(
    src: Path, dest: Path, journal: Path
) -> None:
    plan = plan_export(items_for(src), dest)
    run(plan, "copy", journal)
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries if e["kind"] != "done"))
    big = next(op for op in plan if op.source.name == "big.bin")
    with open(big.target, "r+b") as stream:
        stream.truncate(123_456)  # what a crash mid-write leaves: a prefix of the source
    stranger = next(op for op in plan if op.source.name == "a.jpg")
    stranger.target.write_bytes(b"not a prefix of the source")
    events, summary = undo(journal)
    by_target = {e.target: e.action for e in events}
    assert by_target[big.target] == "removed" and not big.target.exists()
    assert by_target[stranger.target] == "kept"
    assert stranger.target.read_bytes() == b"not a prefix of the source"
    assert summary.failed == 0


def test_undo_twice_is_harmless(src: Path, dest: Path, journal: Path) -> None:
    plan = plan_export(items_for(src), dest)
    run(plan, "move", journal)
    undo(journal)
    restored = sha256_tree(src.parent)
    (src / "one/a.jpg").write_bytes(b"edited after the undo")
    events, summary = undo(journal)
    assert events == [] and summary.already_undone
    assert (src / "one/a.jpg").read_bytes() == b"edited after the undo"
    assert sha256_tree(src.parent).keys() == restored.keys()


def no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every hard link fail as it does across filesystems, so moves copy."""

    def link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", link)


def die_mid_copy(monkeypatch: pytest.MonkeyPatch, victim: Path, after_bytes: int) -> None:
    """Make the process 'die' once `after_bytes` of `victim` are copied: that copy is cut
    short, and nothing the process would do next (clean-up included) happens."""
    real_copy, real_unlink = shutil.copyfileobj, os.unlink
    dead = False

    def copyfileobj(reader: BinaryIO, writer: BinaryIO, length: int = 0) -> None:
        nonlocal dead
        if Path(reader.name) != victim:
            real_copy(reader, writer, length)
            return
        writer.write(reader.read(after_bytes))
        writer.flush()
        dead = True
        raise Crash

    def unlink(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> None:
        if dead:
            raise Crash
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    monkeypatch.setattr(os, "unlink", unlink)


def test_undo_killed_mid_copy_back_leaves_no_cut_file_and_a_rerun_restores_it(
    src: Path, dest: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    run(plan, "move", journal)
    big = next(op for op in plan if op.source.name == "big.bin")
    no_hard_links(monkeypatch)  # the move back crosses filesystems, for both undos
    with monkeypatch.context() as patch:
        die_mid_copy(patch, big.target, after_bytes=123_456)
        with pytest.raises(Crash):
            undo(journal)
    assert not big.source.exists()  # never a cut-short file at the original path
    assert big.target.read_bytes() == SOURCE_FILES["two/big.bin"]

    events, summary = undo(journal)

    assert summary.failed == 0
    assert sha256_tree(src) == before  # every byte back, no "(2)", no copy left behind
    (event,) = (e for e in events if e.source == big.source)
    assert event.action == "restored" and event.restored_to == big.source
    assert "half-done copy from an interrupted undo was discarded" in event.message
    assert not dest.exists()


def test_undo_killed_after_copying_back_deletes_the_export_on_rerun(
    src: Path, dest: Path, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sha256_tree(src)
    plan = plan_export(items_for(src), dest)
    run(plan, "move", journal)
    big = next(op for op in plan if op.source.name == "big.bin")
    no_hard_links(monkeypatch)
    with monkeypatch.context() as patch:
        crash_on_unlink(patch, big.target)
        with pytest.raises(Crash):
            undo(journal)
    assert big.source.read_bytes() == big.target.read_bytes()  # two whole copies

    events, summary = undo(journal)

    assert summary.failed == 0
    assert sha256_tree(src) == before
    (event,) = (e for e in events if e.source == big.source)
    assert event.action == "restored" and event.restored_to == big.source
    assert "interrupted undo had copied it back" in event.message


def test_undo_never_overwrites_a_reoccupied_source(src: Path, dest: Path, journal: Path) -> None:
    original = (src / "one/a.jpg").read_bytes()
    plan = plan_export([(src / "one/a.jpg", "cat")], dest)
    run(plan, "move", journal)
    (src / "one/a.jpg").write_bytes(b"a new file took the old name")
    (event,) = undo(journal)[0]
    assert event.action == "restored" and event.restored_to == src / "one" / "a (2).jpg"
    assert "a (2).jpg" in event.message
    assert (src / "one/a.jpg").read_bytes() == b"a new file took the old name"
    assert (src / "one/a (2).jpg").read_bytes() == original


def test_undo_keeps_what_is_not_exactly_what_the_export_made(
    src: Path, dest: Path, journal: Path
) -> None:
    plan = plan_export(items_for(src), dest)
    run(plan, "copy", journal)
    edited, orphaned = plan[0], plan[2]
    edited.target.write_bytes(b"the user edited the copy")
    orphaned.source.unlink()  # now the copy is the only one left
    (dest / "dog" / "user notes.txt").write_text("added by the user")
    events, summary = undo(journal)
    actions = {e.target: e.action for e in events}
    assert actions[edited.target] == "kept" and edited.target.exists()
    assert actions[orphaned.target] == "kept" and orphaned.target.exists()
    assert [a for t, a in actions.items() if t not in (edited.target, orphaned.target)] == [
        "removed"
    ] * 3
    assert (dest / "dog" / "user notes.txt").exists()
    assert not (dest / "猫_cat").exists()
    assert summary.failed == 0


def test_undo_keeps_a_link_that_now_points_elsewhere(src: Path, dest: Path, journal: Path) -> None:
    plan = plan_export([(src / "one/a.jpg", "cat")], dest)
    run(plan, "link", journal)
    plan[0].target.unlink()
    plan[0].target.symlink_to(src / "two/a.jpg")
    (event,), summary = undo(journal)
    # Another link under that name is not the export's: refused, reported, left in place.
    assert event.action == "refused" and plan[0].target.is_symlink()
    assert os.readlink(plan[0].target) == str(src / "two/a.jpg")
    assert summary.refused == 1


def test_journal_is_never_overwritten_and_damage_is_reported(
    src: Path, dest: Path, journal: Path
) -> None:
    journal.write_text("someone else's file\n")
    with pytest.raises(ExportError, match="journal"):
        run(plan_export(items_for(src), dest), "copy", journal)
    assert journal.read_text() == "someone else's file\n"
    with pytest.raises(ExportError, match="not an export journal"):
        undo(journal)
    journal.write_text('{"kind": "export", "version": 1, "mode": "move"}\n')
    with pytest.raises(ExportError, match="another version of fewshot"):
        undo(journal)  # it bound no file to its identity, so none of its paths can be trusted
    header = {"kind": "export", "version": 2, "mode": "move", "dest": str(dest)}
    journal.write_text(json.dumps(header) + "\ngarbage\n{}\n")
    events, summary = undo(journal)
    assert [(e.action, e.message.split(":")[0]) for e in events] == [
        ("refused", "line 2"),
        ("refused", "line 3"),
    ]
    assert summary.refused == summary.failed == 2


def test_unknown_mode_is_an_error(src: Path, dest: Path, journal: Path) -> None:
    with pytest.raises(ExportError, match="'copy', 'move' or 'link'"):
        run(plan_export(items_for(src), dest), "rename", journal)  # type: ignore[arg-type]


def test_default_journal_path_is_hidden_in_dest_and_new(dest: Path) -> None:
    first = default_journal_path(dest)
    assert first.parent == dest and first.name.startswith(".fewshot-export-")
    assert first.name.endswith(".journal.jsonl")
    dest.mkdir()
    first.write_text("")
    second = default_journal_path(dest)
    assert second != first and not second.exists()
