"""A disk that fills up mid-export: one clear error, a valid journal, and an undo that works.

Most tests inject ENOSPC where the disk would fill (a copy's write, or the journal's own write
cut short mid-line); the last one fills a real 192 KiB tmpfs in a child process.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import BinaryIO

import pytest

from fewshot_gui.core.export import DiskFullError, ExportMode, execute_export, plan_export
from fewshot_gui.core.export_undo import undo_export
from fewshot_gui.core.jobs import drive

REPO = Path(__file__).resolve().parents[2]


def make_sources(root: Path, count: int, size: int) -> list[tuple[Path, str]]:
    root.mkdir(parents=True)
    items = []
    for number in range(count):
        path = root / f"photo-{number}.jpg"
        path.write_bytes(bytes([number]) * size)
        items.append((path, "cat" if number % 2 else "dog"))
    return items


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_journal_whole(journal: Path) -> list[dict[str, object]]:
    text = journal.read_text()
    assert text.endswith("\n")  # no line cut short
    return [json.loads(line) for line in text.splitlines()]


def test_a_copy_that_fills_the_disk_stops_the_run_with_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = make_sources(tmp_path / "photos", 5, 50_000)
    before = digests(tmp_path / "photos")
    dest = tmp_path / "sorted"
    journal = dest / ".export.journal.jsonl"
    plan = plan_export(items, dest)
    real_copy = shutil.copyfileobj

    def copyfileobj(reader: BinaryIO, writer: BinaryIO, length: int = 0) -> None:
        if Path(reader.name) != plan[2].source:
            real_copy(reader, writer, length)
            return
        writer.write(reader.read(20_000))  # the disk fills up part way through this file
        writer.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    events = []
    with pytest.raises(DiskFullError) as raised:
        drive(execute_export(plan, "copy", journal), events.append)
    message = str(raised.value)
    assert "disk filled up" in message and "No space left on device" in message
    assert "stopped after 2 of 5 files" in message and str(journal) in message
    assert "Free some space, then undo this export" in message
    assert raised.value.journal == journal
    assert [e.ok for e in events] == [True, True]  # stopped: the next files would fail alike
    assert not plan[2].target.exists()  # the half-written copy is gone
    kinds = [entry["kind"] for entry in assert_journal_whole(journal)]
    assert kinds.count("done") == 2 and kinds[-1] == "failed"
    monkeypatch.undo()
    summary = drive(undo_export(journal))
    assert summary.failed == 0
    assert not any(p.is_file() for p in dest.rglob("*.jpg"))
    assert digests(tmp_path / "photos") == before


@pytest.mark.parametrize("mode", ["move", "copy"])
def test_a_journal_line_cut_by_a_full_disk_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: ExportMode
) -> None:
    items = make_sources(tmp_path / "photos", 4, 30_000)
    before = digests(tmp_path / "photos")
    journal = tmp_path / "export.journal.jsonl"
    plan = plan_export(items, tmp_path / "sorted")
    real_write = os.write

    def write(descriptor: int, data: bytes) -> int:
        # The disk fills while the journal records that the second file is done: the kernel
        # takes half the line, then refuses the rest.
        if b'"kind": "done", "op": 2' in data:
            real_write(descriptor, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(DiskFullError, match="stopped after 1 of 4 files") as raised:
        drive(execute_export(plan, mode, journal))
    assert isinstance(raised.value.__cause__, Exception)  # the cause is kept, not replaced
    entries = assert_journal_whole(journal)
    assert [e["kind"] for e in entries if e.get("op") == 2][-1] != "done"
    monkeypatch.undo()
    summary = drive(undo_export(journal))  # the second file, moved or copied, is undone too
    assert summary.failed == 0
    assert digests(tmp_path / "photos") == before
    assert not any(p.is_file() for p in (tmp_path / "sorted").rglob("*"))


FILL_A_TMPFS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from fewshot_gui.cli import main
    from fewshot_gui.core.export import DiskFullError, execute_export, plan_export
    from fewshot_gui.core.jobs import drive

    photos, dest = Path(sys.argv[1]), Path(sys.argv[2])
    items = [(path, "cat") for path in sorted(photos.iterdir())]
    journal = dest / ".export.journal.jsonl"
    report = {}
    try:
        drive(execute_export(plan_export(items, dest), "copy", journal))
    except DiskFullError as error:
        report["error"] = str(error)
    text = journal.read_text()
    report["journal_whole"] = text.endswith("\\n") and all(
        isinstance(json.loads(line), dict) for line in text.splitlines()
    )
    report["undo_exit"] = main(["undo", str(journal)])
    report["left"] = sorted(p.name for p in dest.rglob("*.jpg"))
    print(json.dumps(report))
    """
)


def test_a_real_full_tmpfs_gives_the_clear_error_and_undo_cleans_it(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        pytest.skip("needs Linux's unshare to mount a private tmpfs; the ENOSPC tests above ran")
    probe = subprocess.run([unshare, "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are off here; the ENOSPC tests above ran")
    make_sources(tmp_path / "photos", 8, 40_000)
    dest = tmp_path / "tmpfs"
    dest.mkdir()
    script = (
        f"mount -t tmpfs -o size=192k tmpfs {dest} && "
        f"exec {sys.executable} -c '{FILL_A_TMPFS}' {tmp_path / 'photos'} {dest}"
    )
    result = subprocess.run(
        [unshare, "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert "disk filled up" in report["error"] and "No space left on device" in report["error"]
    assert report["journal_whole"]
    assert report["undo_exit"] == 0 and report["left"] == []
    assert "Traceback" not in result.stderr
