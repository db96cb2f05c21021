"""`fewshot discover` on real images: proposals.json's contract, link folders, no overwrite."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fewshot_gui.cli import main

PATTERNS = {"stripes": 3, "checks": 4, "blocks": 5}  # class folder -> pattern seed


@pytest.fixture
def folder(tmp_path: Path, pattern_class: Callable[..., list[Path]]) -> Path:
    images = tmp_path / "photos"
    for name, seed in PATTERNS.items():
        pattern_class(images / name, seed, 14)
    return images


def run(tmp_path: Path, *args: str) -> int:
    return main(["discover", *args, "--device", "cpu", "--engine", "torch", "--batch-size", "8"])


def test_without_examples_every_image_is_clustered_into_linked_folders(
    tmp_path: Path,
    folder: Path,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "found"

    assert (
        run(tmp_path, "--images", str(folder), "--out", str(out), "--model", str(tiny_model)) == 0
    )

    proposals = json.loads((out / "proposals.json").read_text())
    assert isinstance(proposals, list) and len(proposals) == len(PATTERNS)
    classes = []
    for proposal in proposals:
        members = [Path(p) for p in proposal["members"]]
        assert proposal["size"] == len(members)
        assert set(proposal["typical"]) <= set(proposal["members"])
        assert len(proposal["typical"]) == 5
        # One class per proposal, all 14 of its images, and a folder linking to each of them.
        assert {p.parent.name for p in members} == {members[0].parent.name}
        assert len(members) == 14
        classes.append(members[0].parent.name)
        linked = sorted((out / proposal["folder"]).iterdir())
        assert all(p.is_symlink() for p in linked)
        assert sorted(os.path.realpath(p) for p in linked) == sorted(
            os.path.realpath(p) for p in members
        )
    assert sorted(classes) == sorted(PATTERNS)
    assert "3 proposals among 42 of 42 images (all)" in capsys.readouterr().err


def test_with_examples_only_the_unknown_pile_is_proposed(
    tmp_path: Path,
    folder: Path,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    pattern_class: Callable[..., list[Path]],
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    support = tmp_path / "examples"
    pattern_class(support / "stripes", PATTERNS["stripes"], 5, start=100)
    pattern_class(support / "checks", PATTERNS["checks"], 5, start=100)
    out = tmp_path / "found"

    assert (
        run(
            tmp_path,
            *("--images", str(folder), "--support", str(support), "--out", str(out)),
            *("--model", str(tiny_model)),
        )
        == 0
    )

    proposals = json.loads((out / "proposals.json").read_text())
    proposed = {Path(p).parent.name for proposal in proposals for p in proposal["members"]}
    assert proposed == {"blocks"}  # the others have examples: they are no new classes


def test_refuses_an_out_folder_that_holds_anything(
    tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "found"
    out.mkdir()
    (out / "proposals.json").write_text("mine\n")

    assert run(tmp_path, "--images", str(folder), "--out", str(out)) == 2

    assert (out / "proposals.json").read_text() == "mine\n"
    assert "is not empty; give a new or empty folder" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert run(tmp_path, "--images", str(folder), "--out", str(tmp_path / "a-file")) == 2
    assert "is a file" in capsys.readouterr().err


def test_where_symbolic_links_are_refused_members_are_hard_linked_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fewshot_gui.cli.discover import write_proposals
    from fewshot_gui.core.discover import Proposal

    def refuse(*_args: object) -> None:  # as on Windows without the privilege to link
        raise PermissionError("symbolic links are not allowed here")

    photos = [tmp_path / "a" / "1.png", tmp_path / "b" / "1.png"]  # the same name twice
    for path in photos:
        path.parent.mkdir()
        path.write_bytes(b"picture")
    monkeypatch.setattr(os, "symlink", refuse)
    out = tmp_path / "found"
    out.mkdir()

    write_proposals([Proposal(tuple(photos), (photos[0],), 1.0)], out)

    linked = sorted((out / "proposal-01").iterdir())
    assert [p.name for p in linked] == ["1-2.png", "1.png"]  # neither overwrites the other
    assert {p.stat().st_ino for p in linked} == {p.stat().st_ino for p in photos}
    assert "symbolic links are not allowed" in capsys.readouterr().err
    assert json.loads((out / "proposals.json").read_text())[0]["typical"] == [str(photos[0])]
