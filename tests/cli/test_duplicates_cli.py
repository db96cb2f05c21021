"""`fewshot duplicates` on a real folder: the CSV's contract, unreadable files, no overwrite."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fewshot_gui.cli import main
from fewshot_gui.core.images import iter_image_files
from tests.duplicate_images import write_duplicate_set


def test_writes_one_row_per_file_in_a_group_of_two_or_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    images = tmp_path / "photos"
    found = write_duplicate_set(images)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    out = tmp_path / "groups.csv"
    args = ["duplicates", "--images", str(images), "--out", str(out), "--device", "cpu"]
    args += ["--engine", "torch"]

    assert main(args) == 0

    with out.open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["group", "path"]
    groups: dict[str, list[str]] = {}
    for number, path in rows[1:]:
        groups.setdefault(number, []).append(path)
    order = [str(path) for path in iter_image_files(images)]
    mug = sorted(map(str, [found.photo, *found.near_copies]), key=order.index)
    street = sorted(map(str, [found.exact_source, found.exact_copy]), key=order.index)
    # Numbered from 1 in order of each group's first file; files in the folder's order.
    assert list(groups.values()) == sorted([mug, street], key=lambda g: order.index(g[0]))
    assert list(groups) == ["1", "2"]
    err = capsys.readouterr().err
    assert "unreadable: " in err and str(images / "broken.jpg") in err
    assert "2 groups holding 8 of 12 files" in err


def test_refuses_to_replace_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    images = tmp_path / "photos"
    images.mkdir()
    out = tmp_path / "mine.csv"
    out.write_text("my own notes\n")

    assert main(["duplicates", "--images", str(images), "--out", str(out)]) == 2

    assert out.read_text() == "my own notes\n"
    assert "exists; choose another name, or pass --overwrite" in capsys.readouterr().err
    assert main(["duplicates", "--images", str(images), "--out", str(tmp_path / "g.txt")]) == 2
    assert "name the file with .csv" in capsys.readouterr().err
