"""`fewshot` export and undo messages on real folders: dry run, full disk, refused entries,
hidden support folders. No model is needed, so the export step is driven directly."""

from __future__ import annotations

import argparse
import errno
import json
import shutil
from pathlib import Path
from typing import BinaryIO

import pytest

from fewshot_gui.cli import main
from fewshot_gui.cli.label import _export, resolve_inputs
from fewshot_gui.core.errors import ExportError


def photos(tmp_path: Path, count: int = 3) -> list[tuple[Path, str]]:
    folder = tmp_path / "photos"
    folder.mkdir()
    items = []
    for number in range(count):
        (folder / f"{number}.jpg").write_bytes(bytes([number]) * 5_000)
        items.append((folder / f"{number}.jpg", "cat"))
    return items


def export_args(dest: Path, *, dry_run: bool = False) -> argparse.Namespace:
    return argparse.Namespace(export="copy", dest=dest, include_unknown=False, dry_run=dry_run)


def test_a_dry_run_does_not_count_files_gone_since_labeling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = photos(tmp_path)
    items[1][0].unlink()
    assert _export(export_args(tmp_path / "sorted", dry_run=True), items) == 0
    out, err = capsys.readouterr()
    assert out.count("copy ") == 2 and f"missing {items[1][0]}" in out
    assert "2 files would be copied" in err and "1 listed files no longer exist" in err
    assert not (tmp_path / "sorted").exists()


def test_a_full_disk_says_what_happened_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    items = photos(tmp_path)
    real_copy = shutil.copyfileobj

    def copyfileobj(reader: BinaryIO, writer: BinaryIO, length: int = 0) -> None:
        if reader.name == str(items[2][0]):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_copy(reader, writer, length)

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    with pytest.raises(ExportError) as raised:
        _export(export_args(tmp_path / "sorted"), items)
    (journal,) = (tmp_path / "sorted").glob(".fewshot-export-*.journal.jsonl")
    message = str(raised.value)
    assert "disk filled up" in message and "stopped after 2 of 3 files" in message
    assert "Free some space" in message and f"fewshot undo {journal}" in message
    monkeypatch.undo()
    assert main(["undo", str(journal)]) == 0
    assert not list((tmp_path / "sorted").rglob("*.jpg"))


def test_undo_reports_each_refused_entry_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sorted").mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("not exported")
    header = {"kind": "export", "version": 2, "mode": "move", "dest": str(tmp_path / "sorted")}
    entry = {"kind": "begin", "op": 1, "mode": "move", "source": str(tmp_path / "x")}
    entry |= {"target": str(precious), "source_id": [1, 2, 3], "source_folder": 4}
    journal = tmp_path / "hand-written.journal.jsonl"
    journal.write_text(json.dumps(header) + "\n" + json.dumps(entry) + "\nnot json\n")
    assert main(["undo", str(journal)]) == 1
    err = capsys.readouterr().err
    assert err.count(": refused line") == 2 and "outside the destination" in err
    assert "0 failed, 2 refused" in err
    assert precious.read_text() == "not exported"


def test_label_names_the_hidden_support_folders_it_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    for folder in ("cat", ".dog"):
        (tmp_path / "support" / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "support" / folder / "x.png")
    args = argparse.Namespace(
        session=None,
        support=tmp_path / "support",
        classes=None,
        images=tmp_path,
        corrections=None,
        unknown=None,
        model=None,
    )
    support = resolve_inputs(args)[0]
    assert support.names == ("cat",)
    assert "hidden folders are not classes; skipped .dog" in capsys.readouterr().err
