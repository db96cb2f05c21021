"""Hidden support folders are no classes, and the caller is told which were skipped."""

from pathlib import Path

from PIL import Image

from fewshot_gui.core.support import SupportSet, class_folders, hidden_folders


def test_hidden_folders_are_skipped_and_named(tmp_path: Path) -> None:
    for folder in ("cat", ".dog", ".thumbnails"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / folder / "x.png")
    (tmp_path / ".hidden-file.png").write_bytes(b"a file, not a folder")

    assert SupportSet.from_folder(tmp_path).names == ("cat",)
    assert [name for name, _ in class_folders(tmp_path)] == ["cat"]
    assert hidden_folders(tmp_path) == [".dog", ".thumbnails"]
    assert hidden_folders(tmp_path / "cat") == []
    assert hidden_folders(tmp_path / "gone") == []
