"""File name stems made from names anyone can write stay one plain file inside their folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from fewshot_gui.core.paths import MAX_STEM_CHARS, safe_file_stem


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("glyph-test_2.v1", "glyph-test_2.v1"),
        ("/tmp/x/evil", "_tmp_x_evil"),
        ("../../../../x/evil", "_.._.._.._x_evil"),
        ("C:\\Windows\\evil", "C__Windows_evil"),
        ("..", "_"),
        (".hidden", "hidden"),
        ("trailing.", "trailing"),
        ("", "_"),
        ("猫 cat\x00\n", "__cat__"),
        ("\udcff", "_"),
        ("CON", "CON_"),
        ("nul.sqlite", "nul_.sqlite"),
        ("console", "console"),
    ],
)
def test_safe_file_stem(name: str, stem: str) -> None:
    assert safe_file_stem(name) == stem


@pytest.mark.parametrize(
    "name", ["../" * 40 + "x", "/" + "a" * 300, ".." + "/.." * 50, "a" * 64 + "."]
)
def test_safe_file_stem_is_one_short_file_inside_its_folder(tmp_path: Path, name: str) -> None:
    stem = safe_file_stem(name)
    assert 1 <= len(stem) <= MAX_STEM_CHARS + 1
    path = tmp_path / f"{stem}-0123456789abcdef.sqlite"
    path.write_bytes(b"x")
    assert path.resolve().parent == tmp_path.resolve()
    assert list(tmp_path.iterdir()) == [path]
