"""Tests for the results manifest: round trips in every format, atomic replacement, bad input."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fewshot_gui.core.errors import ExportError
from fewshot_gui.core.manifest import (
    MANIFEST_FIELDS,
    ManifestRow,
    read_manifest,
    write_manifest,
)

ROWS = [
    ManifestRow('/photos/a, b/"quoted" 猫.jpg', "cat", 0.9, "dog", 0.1, ""),
    ManifestRow("C:\\Users\\ü\\line\nbreak.png", "dog, big", 1.0, "", None, ""),
    ManifestRow("/photos/broken.jpg", "", None, "", None, 'cannot read: "truncated", sorry'),
]
FORMATS = [".csv", ".json", ".jsonl"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"results{suffix}"
    write_manifest(ROWS, out, meta={"model": "protonet"})
    assert read_manifest(out) == ROWS


@pytest.mark.parametrize("suffix", FORMATS)
def test_confidences_are_rounded_to_six_digits(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"results{suffix}"
    write_manifest([ManifestRow("x.jpg", "cat", 0.123456789, "dog", 1 / 3, "")], out)
    (row,) = read_manifest(out)
    assert (row.confidence, row.runner_up_confidence) == (0.123457, 0.333333)


def test_csv_has_the_header_and_empty_cells_for_missing_numbers(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    write_manifest(ROWS, out)
    with open(out, encoding="utf-8", newline="") as stream:
        table = list(csv.reader(stream))
    assert tuple(table[0]) == MANIFEST_FIELDS
    assert table[3] == ["/photos/broken.jpg", "", "", "", "", 'cannot read: "truncated", sorry']


def test_json_carries_meta_and_jsonl_is_one_object_per_line(tmp_path: Path) -> None:
    write_manifest(ROWS, tmp_path / "r.json", meta={"classes": ["cat", "dog"]})
    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert document["meta"] == {"classes": ["cat", "dog"]}
    assert [r["path"] for r in document["results"]] == [row.path for row in ROWS]
    write_manifest(ROWS, tmp_path / "r.jsonl")
    lines = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["cat", "dog, big", ""]


def test_unknown_suffix_names_the_ones_that_work(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"\.csv, \.json, \.jsonl"):
        write_manifest(ROWS, tmp_path / "results.xlsx")
    assert list(tmp_path.iterdir()) == []


def failing_rows() -> Iterator[ManifestRow]:
    yield ROWS[0]
    raise RuntimeError("the labeler died halfway")


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_failed_write_leaves_the_old_manifest_intact(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"results{suffix}"
    write_manifest(ROWS, out)
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="halfway"):
        write_manifest(failing_rows(), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left behind


def test_non_finite_confidence_is_refused_without_touching_the_file(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    write_manifest(ROWS, out)
    before = out.read_bytes()
    with pytest.raises(ExportError, match="finite"):
        write_manifest([ManifestRow("x.jpg", "cat", float("nan"), "", None, "")], out)
    with pytest.raises(ExportError, match="JSON"):
        write_manifest(ROWS, out, meta={"when": object()})
    assert out.read_bytes() == before


@pytest.mark.skipif(os.name != "posix", reason="permission bits and umask are POSIX")
def test_new_manifest_gets_ordinary_permissions(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        write_manifest(ROWS, tmp_path / "results.csv")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "results.csv").stat().st_mode & 0o777 == 0o644


@pytest.mark.skipif(os.name != "posix", reason="only POSIX file names are arbitrary bytes")
@pytest.mark.parametrize("suffix", FORMATS)
def test_a_non_utf8_file_name_round_trips_to_the_same_path(tmp_path: Path, suffix: str) -> None:
    folder = os.fsencode(tmp_path / "images")
    os.mkdir(folder)
    with open(os.path.join(folder, b"\xff\xfe.png"), "wb") as stream:
        stream.write(b"x")
    (name,) = os.listdir(os.fsdecode(folder))
    path = str(tmp_path / "images" / name)
    assert "\udcff\udcfe" in path  # what os.fsdecode makes of the stray bytes
    rows = [
        ManifestRow(path, "cat", 0.5, "dog", 0.25, ""),
        ManifestRow("/photos/猫.png", "dog", 1.0, "", None, f"cannot read: {path}"),
    ]
    out = tmp_path / f"results{suffix}"
    write_manifest(rows, out, meta={"support": ["\udcffcat"]})

    assert read_manifest(out) == rows
    assert Path(read_manifest(out)[0].path).read_bytes() == b"x"
    raw = out.read_bytes()
    if suffix == ".csv":
        assert os.fsencode(path) in raw  # the name's own bytes
    else:
        raw.decode("utf-8")  # JSON stays UTF-8: the stray bytes are written as escapes
        assert b"\\udcff\\udcfe.png" in raw and "/photos/猫.png".encode() in raw


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_utf8_name_that_spells_an_escape_is_written_as_before(
    tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"results{suffix}"
    write_manifest([ManifestRow("/photos/猫 \\udcff.png", "cat", 0.5, "", None, "")], out)
    text = out.read_text(encoding="utf-8")
    assert ("/photos/猫 \\udcff.png" if suffix == ".csv" else "/photos/猫 \\\\udcff.png") in text
    assert read_manifest(out)[0].path == "/photos/猫 \\udcff.png"


def test_csv_saved_with_a_byte_order_mark_still_reads(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    write_manifest(ROWS, out)
    out.write_bytes(b"\xef\xbb\xbf" + out.read_bytes())
    assert read_manifest(out) == ROWS


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bad.csv", "path,label\nx.jpg,cat\n", "lacks confidence"),
        ("bad.csv", ",".join(MANIFEST_FIELDS) + "\nx.jpg,cat,high,,,\n", "float"),
        ("bad.json", '{"results": [{"path": "x.jpg"}]}', "lacks label"),
        ("bad.json", "[1, 2]", "results"),
        (
            "bad.jsonl",
            '{"path": 1, "label": "", "confidence": null, "runner_up": "", '
            '"runner_up_confidence": null, "error": ""}\n',
            "path must be a string",
        ),
        ("bad.jsonl", "{not json\n", "line 1"),
    ],
)
def test_malformed_manifests_raise_export_error(
    tmp_path: Path, name: str, content: str, problem: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ExportError, match=problem):
        read_manifest(tmp_path / name)


def test_hand_edited_integer_confidences_read_as_floats(tmp_path: Path) -> None:
    record = dict(zip(MANIFEST_FIELDS, ["x.jpg", "cat", 1, "dog", 0, ""], strict=True))
    (tmp_path / "edited.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (row,) = read_manifest(tmp_path / "edited.jsonl")
    assert type(row.confidence) is float and type(row.runner_up_confidence) is float


LINE_BREAKING_NAMES = ["cr\rname.png", "lf\nname.png", "crlf\r\nname.png", "ls\u2028ps\u2029.png"]
LINE_BREAKING_NAMES += ["nel\x85vt\x0bff\x0c.png"]


@pytest.mark.skipif(os.name != "posix", reason="Windows forbids these characters in names")
@pytest.mark.parametrize("suffix", FORMATS)
def test_line_breaks_in_file_names_survive_and_a_continued_run_adds_no_phantom_row(
    tmp_path: Path, suffix: str
) -> None:
    files = []
    for name in [*LINE_BREAKING_NAMES, "plain.png"]:
        (tmp_path / name).write_bytes(b"x")
        files.append(str(tmp_path / name))
    out = tmp_path / f"labels{suffix}"
    write_manifest([ManifestRow(path, "cat", 0.5, "", None, "") for path in files], out)
    read_back = read_manifest(out)
    assert [row.path for row in read_back] == files
    assert all(Path(row.path).read_bytes() == b"x" for row in read_back)
    # What `fewshot label` does when it continues: rows by path, then this run's rows.
    rows = {row.path: row for row in read_back}
    rows.update({path: ManifestRow(path, "dog", 0.75, "", None, "") for path in files})
    assert len(rows) == len(files) and {row.label for row in rows.values()} == {"dog"}


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "'quoted"]


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped_and_read_back(
    tmp_path: Path,
) -> None:
    rows = [ManifestRow(cell, cell, 0.5, cell, -0.25, cell) for cell in FORMULAS]
    out = tmp_path / "labels.csv"
    write_manifest(rows, out)
    with open(out, encoding="utf-8", newline="") as stream:
        cells = [record for record in csv.DictReader(stream)]
    for record, formula in zip(cells, FORMULAS, strict=True):
        for field in ("path", "label", "runner_up", "error"):
            assert record[field] == "'" + formula  # shown as text, never run
        assert record["runner_up_confidence"] == "-0.25"  # numbers stay numbers
    assert read_manifest(out) == rows
    for suffix in (".json", ".jsonl"):  # no spreadsheet runs JSON: written as they are
        write_manifest(rows, tmp_path / f"labels{suffix}")
        assert read_manifest(tmp_path / f"labels{suffix}") == rows
        assert '"=HYPERLINK' in (tmp_path / f"labels{suffix}").read_text()


def test_relative_paths_that_start_like_formulas_still_match_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    names = ["-rf.png", "=1+1.png", "+x.png", "@home.png", "'a.png", "''b.png", "plain.png"]
    for name in names:
        Path(name).write_bytes(b"x")
    out = tmp_path / "labels.csv"
    write_manifest([ManifestRow(name, "cat", 0.5, "", None, "") for name in names], out)
    assert [row.path for row in read_manifest(out)] == names
    assert all(Path(row.path).exists() for row in read_manifest(out))
